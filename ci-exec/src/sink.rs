//! Fan-out of log events: synchronous sinks (a terminal, a durable writer) see every event in
//! order; live subscribers get them through a broadcast channel and, when too slow, lose the
//! oldest ones (they are told how many) — a subscriber never blocks the step.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::log::LogEvent;

/// Something that records every event (a terminal, a log file, a store writer).
pub trait LogSink: Send {
    /// Records events in order.
    fn write(&mut self, events: &[LogEvent]);
}

/// Sends each event to every sink and to live subscribers.
pub struct Fanout {
    sinks: Vec<Box<dyn LogSink>>,
    live: broadcast::Sender<Arc<LogEvent>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("sinks", &self.sinks.len())
            .field("subscribers", &self.live.receiver_count())
            .finish()
    }
}

impl Fanout {
    /// A fan-out whose live subscribers may fall `capacity` events behind before losing some.
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(capacity.max(1));
        Fanout {
            sinks: Vec::new(),
            live,
        }
    }

    /// Adds a sink.
    pub fn add_sink(&mut self, sink: Box<dyn LogSink>) {
        self.sinks.push(sink);
    }

    /// A live subscriber, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEvent>> {
        self.live.subscribe()
    }

    /// Publishes events: sinks first, then subscribers (never waits for them).
    pub fn publish(&mut self, events: Vec<LogEvent>) {
        if events.is_empty() {
            return;
        }
        for sink in &mut self.sinks {
            sink.write(&events);
        }
        for event in events {
            // No subscriber is not an error: the events are in the sinks.
            let _ = self.live.send(Arc::new(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Stream;
    use bytes::Bytes;
    use std::sync::Mutex;

    struct Collect(Arc<Mutex<Vec<LogEvent>>>);

    impl LogSink for Collect {
        fn write(&mut self, events: &[LogEvent]) {
            self.0.lock().unwrap().extend_from_slice(events);
        }
    }

    fn line(i: usize) -> LogEvent {
        LogEvent::Output {
            stream: Stream::Stdout,
            data: Bytes::from(format!("{i}\n")),
            at: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn sinks_see_everything_and_slow_subscribers_lag_without_blocking() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut fanout = Fanout::new(4);
        fanout.add_sink(Box::new(Collect(Arc::clone(&seen))));
        let mut slow = fanout.subscribe();
        for i in 0..100 {
            fanout.publish(vec![line(i)]);
        }
        assert_eq!(seen.lock().unwrap().len(), 100);
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 96),
            other => panic!("expected a lag report, got {other:?}"),
        }
        assert_eq!(*slow.try_recv().unwrap(), line(96));
    }
}
