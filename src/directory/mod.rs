//! The conference directory and the call detail records, in one SQLite database:
//! `DATA_DIR/chorus.db`.
//!
//! - **Conferences** (`conferences` table): ID, name, PINs stored as argon2id PHC strings,
//!   limits and flags. Managed by `chorus conference ...`, read by the server at lookup time.
//! - **Call detail records** (`cdr_legs`, `cdr_conferences`): one row per leg and one per
//!   conference instance, opened when they start and closed when they end; rows a crash left
//!   open are closed as `interrupted` by [`Directory::close_interrupted`] at the next start.
//!
//! **Concurrency.** The database is in WAL mode with a busy timeout, so the running server and
//! `chorus conference` / `chorus cdr` in other processes read and write it at once; those
//! subcommands do not take the data directory's server lock. The server keeps no cache: every
//! [`Directory::get`] or [`Directory::check_pin`] reads the table, so a conference created by
//! another process is seen by the next lookup (a read of one row by primary key, microseconds).
//!
//! **Threads.** A [`Directory`] is one SQLite connection: `Send`, not `Sync`. Each thread that
//! needs the database opens its own `Directory` (opening is cheap once the schema exists).
//! Calls block (disk writes, fsync, argon2 for PINs: tens of milliseconds), so they never run
//! on a media core or on the tokio control task: the server gives the directory a thread of
//! its own and talks to it with messages.
//!
//! ```ignore
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crate::directory::{ConferenceSpec, Directory, PinCheck};
//! let dir = Directory::open("./chorus-data".as_ref())?;
//! let mut spec = ConferenceSpec::new("4711".parse()?);
//! spec.pin = Some("1234".into());
//! dir.create(&spec)?;
//! assert_eq!(dir.check_pin(&spec.id, "1234")?, PinCheck::Ok { moderator: false });
//! # Ok(()) }
//! ```

mod cdr;
mod conference;
mod pin;
mod schema;
mod unix_ms;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

pub use cdr::{CdrFilter, ConferenceEnd, EndReason, LegEnd, LegRecord, LegStats, Role};
pub use conference::{Conference, ConferenceFlags, ConferenceId, ConferenceSpec};
pub use pin::{PinCheck, PinKind};
pub use unix_ms::UnixMs;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "chorus.db";

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong with the directory. Variants for which [`is_bad_input`] holds are the
/// operator's or caller's mistakes; the others are the system's.
///
/// [`is_bad_input`]: DirectoryError::is_bad_input
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The data directory or the database file could not be created or opened.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer Chorus with a schema this build does not know.
    #[error(
        "database schema version {found} is newer than this chorus knows ({known}); upgrade chorus"
    )]
    SchemaTooNew {
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: u32,
    },
    /// The journal mode could not be set to WAL (e.g. a file system without shared memory).
    #[error("database: journal mode is {0}, WAL is needed")]
    NotWal(String),
    /// A conference ID that is not 1-20 digits.
    #[error("conference ID {id:?} {reason}")]
    BadId {
        /// What was given.
        id: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A PIN that is not 3-12 digits.
    #[error("{kind} {reason}")]
    BadPin {
        /// Which PIN.
        kind: PinKind,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The PIN and the moderator PIN are the same, so a caller's role could not be told.
    #[error("the PIN and the moderator PIN must differ")]
    SamePins,
    /// A name too long or with control characters.
    #[error("conference name {0}")]
    BadName(&'static str),
    /// A participant limit out of range.
    #[error("max participants must be 1 to 100000, not {0}")]
    BadMax(u32),
    /// A conference with this ID exists already.
    #[error("conference {0} already exists")]
    Duplicate(ConferenceId),
    /// No conference has this ID.
    #[error("no conference {0}")]
    UnknownConference(ConferenceId),
    /// No open call detail record has this row id (never opened, or closed already).
    #[error("no open call record {0}")]
    UnknownRecord(i64),
    /// Hashing a PIN failed (the system's random source, most likely).
    #[error("hashing the PIN failed: {0}")]
    Hash(String),
}

impl DirectoryError {
    /// The operator's or caller's mistake (bad ID, PIN, name or limit, duplicate or unknown
    /// conference), as opposed to a failure of the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DirectoryError::BadId { .. }
                | DirectoryError::BadPin { .. }
                | DirectoryError::SamePins
                | DirectoryError::BadName(_)
                | DirectoryError::BadMax(_)
                | DirectoryError::Duplicate(_)
                | DirectoryError::UnknownConference(_)
        )
    }
}

/// One connection to `DATA_DIR/chorus.db`: the conference directory and the call records.
/// `Send`, not `Sync`: one per thread (see the module page).
pub struct Directory {
    conn: Connection,
    path: PathBuf,
}

impl Directory {
    /// Opens (creating if needed) `data_dir` and its database, sets WAL mode, the busy
    /// timeout and full sync, and brings the schema up to date. A new database file is
    /// created with mode 0600: it holds PIN hashes and caller addresses.
    pub fn open(data_dir: &Path) -> Result<Directory, DirectoryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DirectoryError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        create_private(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DirectoryError::NotWal(mode));
        }
        // FULL: in WAL mode, each commit is synced, so a record written survives a power cut,
        // not only a crash of the process. Commits are few (a leg's start and end).
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        Ok(Directory { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, DirectoryError> {
        schema::version(&self.conn)
    }

    /// Runs `f` inside one IMMEDIATE transaction, so the writes it makes share one commit
    /// (one fsync, not one each). What `f` returns is returned, errors included: a write that
    /// fails inside does not undo the others; only a failed commit does (and is the `Err`).
    pub fn batch<T>(&mut self, f: impl FnOnce(&Directory) -> T) -> Result<T, DirectoryError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let out = f(self);
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(out)
    }

    /// Stores a new conference, its PINs hashed. Fails on a bad spec or a duplicate ID.
    pub fn create(&self, spec: &ConferenceSpec) -> Result<(), DirectoryError> {
        spec.validate()?;
        let pin_hash = spec
            .pin
            .as_deref()
            .map(|p| pin::hash(PinKind::Participant, p))
            .transpose()?;
        let moderator_pin_hash = spec
            .moderator_pin
            .as_deref()
            .map(|p| pin::hash(PinKind::Moderator, p))
            .transpose()?;
        let f = spec.flags;
        let inserted = self.conn.execute(
            "INSERT INTO conferences (id, name, pin_hash, moderator_pin_hash, max_participants,
                 record, wait_for_moderator, announce_count, join_tones, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                spec.id.as_str(),
                spec.name,
                pin_hash,
                moderator_pin_hash,
                spec.max_participants,
                f.record,
                f.wait_for_moderator,
                f.announce_count,
                f.join_tones,
                UnixMs::now().0,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                Err(DirectoryError::Duplicate(spec.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// All conferences, by ID (shorter IDs first, then in digit order).
    pub fn list(&self) -> Result<Vec<Conference>, DirectoryError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CONFERENCE_COLUMNS} FROM conferences ORDER BY length(id), id"
        ))?;
        let rows = stmt.query_map([], conference_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The conference with this ID, read from the database now.
    pub fn get(&self, id: &ConferenceId) -> Result<Option<Conference>, DirectoryError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CONFERENCE_COLUMNS} FROM conferences WHERE id = ?1"
        ))?;
        Ok(stmt
            .query_row([id.as_str()], conference_from_row)
            .optional()?)
    }

    /// Removes a conference; `false` if there was none. Its call records stay.
    pub fn delete(&self, id: &ConferenceId) -> Result<bool, DirectoryError> {
        let n = self
            .conn
            .execute("DELETE FROM conferences WHERE id = ?1", [id.as_str()])?;
        Ok(n > 0)
    }

    /// Checks digits a caller entered against the conference's PINs (see [`PinCheck`]).
    /// Blocks for an argon2 verification per stored PIN tried (tens of milliseconds).
    pub fn check_pin(&self, id: &ConferenceId, entered: &str) -> Result<PinCheck, DirectoryError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT pin_hash, moderator_pin_hash FROM conferences WHERE id = ?1")?;
        let hashes: Option<(Option<String>, Option<String>)> = stmt
            .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (pin, moderator) =
            hashes.ok_or_else(|| DirectoryError::UnknownConference(id.clone()))?;
        Ok(pin::check(entered, pin.as_deref(), moderator.as_deref()))
    }
}

/// Creates `path` with mode 0600 if it does not exist yet (SQLite gives its `-wal` and `-shm`
/// files the same mode).
fn create_private(path: &Path) -> Result<(), DirectoryError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(DirectoryError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

const CONFERENCE_COLUMNS: &str = "id, name, pin_hash IS NOT NULL, moderator_pin_hash IS NOT NULL, \
     max_participants, record, wait_for_moderator, announce_count, join_tones, created_at";

fn conference_from_row(r: &Row<'_>) -> rusqlite::Result<Conference> {
    let id: String = r.get(0)?;
    Ok(Conference {
        // The schema's CHECK keeps stored IDs valid; a row that is not (edited by hand) is
        // reported as a conversion error rather than trusted.
        id: id.parse().map_err(|e: DirectoryError| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        name: r.get(1)?,
        has_pin: r.get(2)?,
        has_moderator_pin: r.get(3)?,
        max_participants: r.get(4)?,
        flags: ConferenceFlags {
            record: r.get(5)?,
            wait_for_moderator: r.get(6)?,
            announce_count: r.get(7)?,
            join_tones: r.get(8)?,
        },
        created_at: UnixMs(r.get(9)?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh data directory under the system's temp directory, unique per test.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chorus-directory-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn id(s: &str) -> ConferenceId {
        s.parse().unwrap()
    }

    #[test]
    fn open_sets_wal_busy_timeout_schema_and_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let data = scratch("open");
        let d = Directory::open(&data).unwrap();
        assert_eq!(d.path(), data.join("chorus.db"));
        assert_eq!(d.schema_version().unwrap(), schema::current_version());
        let mode: String = d
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let busy: i64 = d
            .conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
        let perm = std::fs::metadata(d.path()).unwrap().permissions().mode();
        assert_eq!(perm & 0o777, 0o600);
        drop(d);
        // Reopening an up-to-date database changes nothing.
        let d = Directory::open(&data).unwrap();
        assert_eq!(d.schema_version().unwrap(), schema::current_version());
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn create_list_get_delete() {
        let data = scratch("crud");
        let d = Directory::open(&data).unwrap();
        assert!(d.list().unwrap().is_empty());
        let mut a = ConferenceSpec::new(id("4711"));
        a.name = Some("Weekly sync".into());
        a.max_participants = Some(25);
        a.flags.record = true;
        a.flags.wait_for_moderator = true;
        d.create(&a).unwrap();
        d.create(&ConferenceSpec::new(id("12"))).unwrap();
        let dup = d.create(&ConferenceSpec::new(id("4711"))).unwrap_err();
        assert!(matches!(dup, DirectoryError::Duplicate(_)), "{dup}");
        assert!(dup.is_bad_input());
        assert_eq!(dup.to_string(), "conference 4711 already exists");

        let all = d.list().unwrap();
        let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["12", "4711"]);
        let got = d.get(&id("4711")).unwrap().unwrap();
        assert_eq!(got.name.as_deref(), Some("Weekly sync"));
        assert_eq!(got.max_participants, Some(25));
        assert!(!got.has_pin && !got.has_moderator_pin);
        assert_eq!(
            got.flags,
            ConferenceFlags {
                record: true,
                wait_for_moderator: true,
                announce_count: true,
                join_tones: true
            }
        );
        let now = UnixMs::now().0;
        assert!((now - 60_000..=now).contains(&got.created_at.0));
        let plain = d.get(&id("12")).unwrap().unwrap();
        assert_eq!(plain.name, None);
        assert_eq!(plain.max_participants, None);
        assert_eq!(plain.flags, ConferenceFlags::default());

        assert!(d.delete(&id("4711")).unwrap());
        assert!(!d.delete(&id("4711")).unwrap());
        assert_eq!(d.get(&id("4711")).unwrap(), None);
        assert_eq!(d.list().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn pins_are_hashed_and_checked() {
        let data = scratch("pins");
        let d = Directory::open(&data).unwrap();
        let mut s = ConferenceSpec::new(id("100"));
        s.pin = Some("2468".into());
        s.moderator_pin = Some("13579".into());
        d.create(&s).unwrap();
        let c = d.get(&id("100")).unwrap().unwrap();
        assert!(c.has_pin && c.has_moderator_pin);
        // Only PHC strings are stored, never the digits.
        let (p, m): (String, String) = d
            .conn
            .query_row(
                "SELECT pin_hash, moderator_pin_hash FROM conferences WHERE id = '100'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(p.starts_with("$argon2id$") && !p.contains("2468"), "{p}");
        assert!(m.starts_with("$argon2id$") && !m.contains("13579"), "{m}");

        let room = id("100");
        assert_eq!(
            d.check_pin(&room, "2468").unwrap(),
            PinCheck::Ok { moderator: false }
        );
        assert_eq!(
            d.check_pin(&room, "13579").unwrap(),
            PinCheck::Ok { moderator: true }
        );
        assert_eq!(d.check_pin(&room, "2469").unwrap(), PinCheck::Wrong);
        assert_eq!(d.check_pin(&room, "").unwrap(), PinCheck::Wrong);
        assert_eq!(d.check_pin(&room, "*#").unwrap(), PinCheck::Wrong);

        d.create(&ConferenceSpec::new(id("200"))).unwrap();
        assert_eq!(d.check_pin(&id("200"), "").unwrap(), PinCheck::NoPin);
        let unknown = d.check_pin(&id("300"), "2468").unwrap_err();
        assert!(matches!(unknown, DirectoryError::UnknownConference(_)));

        // Bad PINs are refused before anything is stored.
        for (pin, moderator) in [("12", None), ("1234", Some("12345678901234"))] {
            let mut s = ConferenceSpec::new(id("400"));
            s.pin = Some(pin.into());
            s.moderator_pin = moderator.map(String::from);
            let e = d.create(&s).unwrap_err();
            assert!(matches!(e, DirectoryError::BadPin { .. }), "{e}");
            assert!(e.is_bad_input());
        }
        assert_eq!(d.get(&id("400")).unwrap(), None);
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn a_second_handle_sees_changes_at_once() {
        let data = scratch("two-handles");
        let server = Directory::open(&data).unwrap();
        assert_eq!(server.get(&id("55")).unwrap(), None);
        // Another thread (or process) with its own connection creates a conference...
        let data2 = data.clone();
        std::thread::spawn(move || {
            let cli = Directory::open(&data2).unwrap();
            let mut s = ConferenceSpec::new(id("55"));
            s.pin = Some("555".into());
            cli.create(&s).unwrap();
        })
        .join()
        .unwrap();
        // ...and the first handle's next lookup sees it, PIN included.
        assert!(server.get(&id("55")).unwrap().is_some());
        assert_eq!(
            server.check_pin(&id("55"), "555").unwrap(),
            PinCheck::Ok { moderator: false }
        );
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn directory_is_send() {
        fn send<T: Send>() {}
        send::<Directory>();
    }
}
