//! Control <-> core queues: bounded lock-free queues plus an eventfd doorbell per core.
//!
//! A full queue is an error the sender sees and a counter the operator sees; nobody blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use super::command::{Command, CoreId, Event};
use super::io::sys::EventFd;

/// The command queue of one core was full; the command is handed back.
#[derive(Debug, thiserror::Error)]
#[error("command queue of {core} is full")]
pub struct QueueFull {
    /// The core.
    pub core: CoreId,
    /// The command that was not sent.
    pub command: Command,
}

/// The queues between the control side and one core.
#[derive(Debug)]
pub struct Mailbox {
    core: CoreId,
    commands: ArrayQueue<Command>,
    events: ArrayQueue<Event>,
    /// Rung by the control side after pushing commands; watched by the core's ring.
    pub(crate) wake: EventFd,
    /// Rung by the core after pushing events; shared by all cores of an engine.
    events_wake: Arc<EventFd>,
    commands_full: AtomicU64,
    events_full: AtomicU64,
}

impl Mailbox {
    /// A mailbox with room for `capacity` commands and `capacity` events.
    pub(crate) fn new(
        core: CoreId,
        capacity: usize,
        events_wake: Arc<EventFd>,
    ) -> std::io::Result<Self> {
        Ok(Mailbox {
            core,
            commands: ArrayQueue::new(capacity.max(1)),
            events: ArrayQueue::new(capacity.max(1)),
            // Blocking, so that io_uring parks its read in the kernel until the doorbell rings.
            wake: EventFd::new(false)?,
            events_wake,
            commands_full: AtomicU64::new(0),
            events_full: AtomicU64::new(0),
        })
    }

    /// Control side: queue a command and wake the core.
    pub fn send(&self, command: Command) -> Result<(), QueueFull> {
        match self.commands.push(command) {
            Ok(()) => {
                self.wake.notify();
                Ok(())
            }
            Err(command) => {
                self.commands_full.fetch_add(1, Ordering::Relaxed);
                Err(QueueFull {
                    core: self.core,
                    command,
                })
            }
        }
    }

    /// The doorbell the core's packet I/O watches.
    pub(crate) fn wake_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.wake.as_raw_fd()
    }

    /// Core side: the next command.
    pub(crate) fn next_command(&self) -> Option<Command> {
        self.commands.pop()
    }

    /// Core side: report an event; a full queue drops it and counts. Returns whether queued.
    pub(crate) fn emit(&self, event: Event) -> bool {
        match self.events.push(event) {
            Ok(()) => true,
            Err(_) => {
                self.events_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Core side: wake whoever waits for events.
    pub(crate) fn notify_events(&self) {
        self.events_wake.notify();
    }

    /// Control side: the next event.
    pub fn next_event(&self) -> Option<Event> {
        self.events.pop()
    }

    /// Commands refused because the queue was full.
    pub fn commands_full(&self) -> u64 {
        self.commands_full.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub fn events_full(&self) -> u64 {
        self.events_full.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::command::LegId;

    #[test]
    fn full_queues_are_counted_not_blocking() {
        let mb = Mailbox::new(CoreId(0), 2, Arc::new(EventFd::new(true).unwrap())).unwrap();
        mb.send(Command::QueryLeg(LegId(1))).unwrap();
        mb.send(Command::QueryLeg(LegId(2))).unwrap();
        let err = mb.send(Command::QueryLeg(LegId(3))).unwrap_err();
        assert!(matches!(err.command, Command::QueryLeg(LegId(3))));
        assert_eq!(mb.commands_full(), 1);
        assert!(mb.wake.drain());
        assert!(matches!(
            mb.next_command(),
            Some(Command::QueryLeg(LegId(1)))
        ));

        assert!(mb.emit(Event::UnknownLeg { id: LegId(1) }));
        assert!(mb.emit(Event::UnknownLeg { id: LegId(2) }));
        assert!(!mb.emit(Event::UnknownLeg { id: LegId(3) }));
        assert_eq!(mb.events_full(), 1);
    }
}
