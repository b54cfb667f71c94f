//! The database schema as a list of migrations. `PRAGMA user_version` holds how many have
//! been applied; opening a database applies the rest in order, each in its own transaction.
//! A migration, once released, is never edited: a change is a new entry at the end.
//!
//! Times are INTEGER milliseconds since the Unix epoch (UTC). Booleans are INTEGER 0/1.

use rusqlite::{Connection, TransactionBehavior};

use super::DirectoryError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: conferences, call detail records.
    "CREATE TABLE conferences (
        id TEXT PRIMARY KEY NOT NULL
            CHECK (length(id) BETWEEN 1 AND 20 AND id NOT GLOB '*[^0-9]*'),
        name TEXT,
        pin_hash TEXT,
        moderator_pin_hash TEXT,
        max_participants INTEGER CHECK (max_participants IS NULL OR max_participants > 0),
        record INTEGER NOT NULL DEFAULT 0 CHECK (record IN (0, 1)),
        wait_for_moderator INTEGER NOT NULL DEFAULT 0 CHECK (wait_for_moderator IN (0, 1)),
        announce_count INTEGER NOT NULL DEFAULT 1 CHECK (announce_count IN (0, 1)),
        join_tones INTEGER NOT NULL DEFAULT 1 CHECK (join_tones IN (0, 1)),
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE cdr_legs (
        id INTEGER PRIMARY KEY,
        leg_id INTEGER NOT NULL,
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        source TEXT NOT NULL,
        conference_id TEXT,
        role TEXT NOT NULL DEFAULT 'participant' CHECK (role IN ('participant', 'moderator')),
        joined_at INTEGER NOT NULL,
        last_seen_at INTEGER,
        left_at INTEGER,
        codec TEXT NOT NULL,
        srtp_suite TEXT,
        packets_in INTEGER NOT NULL DEFAULT 0,
        packets_out INTEGER NOT NULL DEFAULT 0,
        lost INTEGER NOT NULL DEFAULT 0,
        jitter_ms REAL NOT NULL DEFAULT 0,
        mos REAL,
        end_reason TEXT
    ) STRICT;
    CREATE INDEX cdr_legs_open ON cdr_legs (id) WHERE left_at IS NULL;
    CREATE INDEX cdr_legs_conference ON cdr_legs (conference_id, id);

    CREATE TABLE cdr_conferences (
        id INTEGER PRIMARY KEY,
        conference_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        max_participants_seen INTEGER NOT NULL DEFAULT 0,
        participants_total INTEGER NOT NULL DEFAULT 0,
        recording_path TEXT,
        end_reason TEXT
    ) STRICT;
    CREATE INDEX cdr_conferences_open ON cdr_conferences (id) WHERE ended_at IS NULL;
    CREATE INDEX cdr_conferences_conference ON cdr_conferences (conference_id, id);",
];

/// The schema version this build writes.
pub fn current_version() -> u32 {
    // INVARIANT: a handful of migrations, far below u32::MAX.
    u32::try_from(MIGRATIONS.len()).expect("migration count fits u32")
}

/// The database's `user_version`.
pub fn version(conn: &Connection) -> Result<u32, DirectoryError> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    u32::try_from(v).map_err(|_| DirectoryError::SchemaTooNew {
        found: v,
        known: current_version(),
    })
}

/// Applies the migrations the database lacks. Each runs in an IMMEDIATE transaction that
/// re-reads the version first, so two processes opening a new database at once apply each
/// migration once. A database newer than this build is refused rather than misread.
pub fn migrate(conn: &mut Connection) -> Result<(), DirectoryError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = version(&tx)?;
        let known = current_version();
        if v > known {
            return Err(DirectoryError::SchemaTooNew {
                found: i64::from(v),
                known,
            });
        }
        let Some(sql) = MIGRATIONS.get(v as usize) else {
            return Ok(()); // up to date; the transaction rolls back having changed nothing
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.commit()?;
        tracing::debug!(version = v + 1, "directory schema migrated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_from_empty_once_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(version(&conn).unwrap(), 0);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), current_version());
        // Again: nothing to do, nothing fails (the tables exist).
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), current_version());
        for table in ["conferences", "cdr_legs", "cdr_conferences"] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        conn.pragma_update(None, "user_version", current_version() + 1)
            .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(matches!(e, DirectoryError::SchemaTooNew { .. }), "{e}");
    }

    #[test]
    fn ids_checked_by_the_schema_too() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let insert = |id: &str| {
            conn.execute(
                "INSERT INTO conferences (id, created_at) VALUES (?1, 0)",
                [id],
            )
        };
        assert!(insert("12").is_ok());
        assert!(insert("1a").is_err());
        assert!(insert("").is_err());
        assert!(insert("123456789012345678901").is_err());
    }
}
