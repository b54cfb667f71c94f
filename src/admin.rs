//! The operator's subcommands on the database: `chorus conference ...` and `chorus cdr`.
//! They open `DATA_DIR/chorus.db` directly and do not take the data directory's server lock,
//! so they work while `chorus serve` runs (SQLite's WAL mode lets both use the file at once).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::directory::{
    CdrFilter, Conference, ConferenceId, ConferenceSpec, DB_FILE, Directory, DirectoryError, UnixMs,
};

/// Where the database lives; the same default as `chorus serve`.
#[derive(Args, Debug)]
pub struct DataDirArg {
    /// The server's data directory, holding chorus.db
    #[arg(
        long,
        value_name = "DIR",
        global = true,
        default_value = "./chorus-data"
    )]
    pub data_dir: PathBuf,
}

/// `chorus conference`.
#[derive(Args, Debug)]
pub struct ConferenceArgs {
    #[command(subcommand)]
    pub command: ConferenceCmd,
    #[command(flatten)]
    pub dir: DataDirArg,
}

/// The conference directory's operations.
#[derive(Subcommand, Debug)]
pub enum ConferenceCmd {
    /// Create a conference (a running server sees it at once).
    Create(CreateArgs),
    /// List the conferences.
    List,
    /// Show one conference (PINs are never shown, only whether they are set).
    Show {
        /// Conference ID (1-20 digits)
        id: String,
    },
    /// Delete a conference (its call records stay).
    Delete {
        /// Conference ID (1-20 digits)
        id: String,
    },
}

/// `chorus conference create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Conference ID callers key in: 1-20 digits
    pub id: String,
    /// Participants' PIN: 3-12 digits (stored hashed)
    #[arg(long, value_name = "DIGITS")]
    pub pin: Option<String>,
    /// Moderator PIN: 3-12 digits, not the same as --pin (stored hashed)
    #[arg(long, value_name = "DIGITS")]
    pub moderator_pin: Option<String>,
    /// Most participants at once (1-100000) [default: no limit of its own]
    #[arg(long, value_name = "N")]
    pub max: Option<u32>,
    /// A name for operators
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Record the conference from its start
    #[arg(long)]
    pub record: bool,
    /// Participants wait, hearing hold audio, until a moderator joins
    #[arg(long)]
    pub wait_for_moderator: bool,
    /// Do not tell joining callers how many are in the conference
    #[arg(long)]
    pub no_announce_count: bool,
    /// No tone when someone joins or leaves
    #[arg(long)]
    pub no_join_tones: bool,
}

/// `chorus cdr`.
#[derive(Args, Debug)]
pub struct CdrArgs {
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
    /// At most this many records, newest first [default: all]
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only this conference's records
    #[arg(long, value_name = "ID")]
    pub conference: Option<String>,
    /// Conference records (one per conference instance) instead of leg records
    #[arg(long)]
    pub conferences: bool,
    #[command(flatten)]
    pub dir: DataDirArg,
}

/// Runs `chorus conference ...`: exit 0, 2 for the operator's mistakes, 1 for failures.
pub fn conference(args: ConferenceArgs) -> ExitCode {
    finish(run_conference(args))
}

/// Runs `chorus cdr`.
pub fn cdr(args: CdrArgs) -> ExitCode {
    finish(run_cdr(args))
}

fn finish(result: Result<(), DirectoryError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus: {e}");
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    }
}

fn run_conference(args: ConferenceArgs) -> Result<(), DirectoryError> {
    // Arguments first: a bad ID is reported without touching the data directory.
    match args.command {
        ConferenceCmd::Create(c) => {
            let spec = ConferenceSpec {
                id: c.id.parse()?,
                name: c.name,
                pin: c.pin,
                moderator_pin: c.moderator_pin,
                max_participants: c.max,
                flags: crate::directory::ConferenceFlags {
                    record: c.record,
                    wait_for_moderator: c.wait_for_moderator,
                    announce_count: !c.no_announce_count,
                    join_tones: !c.no_join_tones,
                },
            };
            spec.validate()?;
            Directory::open(&args.dir.data_dir)?.create(&spec)?;
            println!("conference {} created", spec.id);
        }
        ConferenceCmd::List => {
            let all = match existing(&args.dir.data_dir)? {
                Some(d) => d.list()?,
                None => Vec::new(),
            };
            if all.is_empty() {
                println!("no conferences");
                return Ok(());
            }
            let rows = all
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        c.name.clone().unwrap_or_default(),
                        set_or_none(c.has_pin).into(),
                        set_or_none(c.has_moderator_pin).into(),
                        c.max_participants.map_or("-".into(), |m| m.to_string()),
                        flags(c),
                        c.created_at.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "PIN",
                    "MODERATOR PIN",
                    "MAX",
                    "FLAGS",
                    "CREATED",
                ],
                &rows,
            );
        }
        ConferenceCmd::Show { id } => {
            let id: ConferenceId = id.parse()?;
            let found = match existing(&args.dir.data_dir)? {
                Some(d) => d.get(&id)?,
                None => None,
            };
            let c = found.ok_or(DirectoryError::UnknownConference(id))?;
            let yes = |b: bool| if b { "yes" } else { "no" };
            println!("conference: {}", c.id);
            println!("name: {}", c.name.as_deref().unwrap_or("-"));
            println!("pin: {}", set_or_none(c.has_pin));
            println!("moderator pin: {}", set_or_none(c.has_moderator_pin));
            println!(
                "max participants: {}",
                c.max_participants
                    .map_or("no limit".into(), |m| m.to_string())
            );
            println!("record: {}", yes(c.flags.record));
            println!("wait for moderator: {}", yes(c.flags.wait_for_moderator));
            println!("announce count: {}", yes(c.flags.announce_count));
            println!("join tones: {}", yes(c.flags.join_tones));
            println!("created: {}", c.created_at);
        }
        ConferenceCmd::Delete { id } => {
            let id: ConferenceId = id.parse()?;
            let deleted = match existing(&args.dir.data_dir)? {
                Some(d) => d.delete(&id)?,
                None => false,
            };
            if !deleted {
                return Err(DirectoryError::UnknownConference(id));
            }
            println!("conference {id} deleted");
        }
    }
    Ok(())
}

fn run_cdr(args: CdrArgs) -> Result<(), DirectoryError> {
    let filter = CdrFilter {
        conference: args.conference.as_deref().map(str::parse).transpose()?,
        limit: args.limit,
    };
    let dir = existing(&args.dir.data_dir)?;
    let mut out = std::io::stdout().lock();
    if args.conferences {
        let rows = match &dir {
            Some(d) => d.cdr_conferences(&filter)?,
            None => Vec::new(),
        };
        if args.json {
            for r in &rows {
                let _ = writeln!(out, "{}", r.to_json());
            }
            return Ok(());
        }
        let table = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.conference.clone(),
                    r.started_at.to_string(),
                    r.ended_at.map_or("-".into(), |t| t.to_string()),
                    r.max_participants_seen.to_string(),
                    r.participants_total.to_string(),
                    r.recording_path.clone().unwrap_or_else(|| "-".into()),
                    r.end_reason.clone().unwrap_or_else(|| "(open)".into()),
                ]
            })
            .collect::<Vec<_>>();
        print_table(
            &[
                "ID",
                "CONFERENCE",
                "STARTED",
                "ENDED",
                "MAX SEEN",
                "TOTAL",
                "RECORDING",
                "END",
            ],
            &table,
        );
        return Ok(());
    }
    let rows = match &dir {
        Some(d) => d.cdr_legs(&filter)?,
        None => Vec::new(),
    };
    if args.json {
        for r in &rows {
            let _ = writeln!(out, "{}", r.to_json());
        }
        return Ok(());
    }
    let table = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.joined_at.to_string(),
                r.duration_s().map_or("-".into(), |d| format!("{d:.1}")),
                r.conference.clone().unwrap_or_else(|| "-".into()),
                r.role.clone(),
                r.caller.clone(),
                r.source.clone(),
                r.codec.clone(),
                r.srtp_suite.clone().unwrap_or_else(|| "-".into()),
                r.stats.packets_in.to_string(),
                r.stats.packets_out.to_string(),
                r.stats.lost.to_string(),
                format!("{:.1}", r.stats.jitter_ms),
                r.mos.map_or("-".into(), |m| format!("{m:.2}")),
                r.end_reason.clone().unwrap_or_else(|| "(open)".into()),
            ]
        })
        .collect::<Vec<_>>();
    print_table(
        &[
            "ID",
            "JOINED",
            "SECONDS",
            "CONFERENCE",
            "ROLE",
            "CALLER",
            "SOURCE",
            "CODEC",
            "SRTP",
            "IN",
            "OUT",
            "LOST",
            "JITTER MS",
            "MOS",
            "END",
        ],
        &table,
    );
    Ok(())
}

/// The directory, if its database exists: commands that only read or delete do not leave a
/// new database behind when run with the wrong `--data-dir` (they find nothing there).
fn existing(data_dir: &std::path::Path) -> Result<Option<Directory>, DirectoryError> {
    if data_dir.join(DB_FILE).exists() {
        Directory::open(data_dir).map(Some)
    } else {
        Ok(None)
    }
}

fn set_or_none(set: bool) -> &'static str {
    if set { "set" } else { "none" }
}

fn flags(c: &Conference) -> String {
    let f = c.flags;
    let names: Vec<&str> = [
        (f.record, "record"),
        (f.wait_for_moderator, "wait-for-moderator"),
        (f.announce_count, "announce-count"),
        (f.join_tones, "join-tones"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// Left-aligned columns two spaces apart, a header line first; nothing for no rows but
/// the header. Widths in characters.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`chorus cdr | head`) ends the listing quietly.
    let _ = out.write_all(table(headers, rows).as_bytes());
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(&widths) {
            l.push_str(cell);
            // INVARIANT: `w` is the widest cell of this column, so the subtraction is >= 0.
            l.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
        }
        text.push_str(l.trim_end());
        text.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

/// Closes the call records a crash left open; `chorus serve` calls it once it holds the
/// data directory's lock, before anything writes records.
pub fn close_interrupted(dir: &mut Directory) -> Result<(), DirectoryError> {
    let closed = dir.close_interrupted(UnixMs::now())?;
    if closed.legs + closed.conferences > 0 {
        tracing::warn!(
            legs = closed.legs,
            conferences = closed.conferences,
            "closed call records left open by an unclean stop, as interrupted"
        );
    } else {
        tracing::info!(
            legs = 0,
            conferences = 0,
            "no call records left open by the last stop"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["ID", "NAME", "PIN"],
            &[
                vec!["1".into(), "Weekly sync".into(), "set".into()],
                vec!["12345".into(), "".into(), "none".into()],
            ],
        );
        assert_eq!(
            t,
            "ID     NAME         PIN\n1      Weekly sync  set\n12345               none\n"
        );
    }
}
