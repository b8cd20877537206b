//! [`Deadline`]: a connection's timer, served by one helper thread per
//! process instead of the runtime's timer.
//!
//! Why not the runtime's timer: tokio's time driver does its work on every
//! park of the runtime (it reads the clock twice and polls its wheel, about
//! 440 instructions per wake-up, measured with callgrind on the `echo`
//! example at one message per wake-up), whether or not any timer is armed.
//! A WebSocket connection needs a deadline only now and then (the opening
//! handshake, a closing handshake, heartbeats), so crest's deadlines live
//! here and a tokio runtime needs only its I/O driver: what an I/O-only
//! runtime costs per wake-up is what crest costs. async-io's timers cost
//! nothing per wake-up, but each move of one (`Timer::set_at`: a remove, an
//! insert and a write to the reactor's notifier) does, and a connection's
//! deadlines move with its traffic (the idle timeout runs from the last
//! input); so both adapters' connections wait here, and the rule below
//! lives once.
//!
//! How it works: a deadline is registered (an entry in a heap shared with the
//! thread) only when it is first armed, or moved earlier than the registered
//! entry. A deadline that moves later (a heartbeat pushed back by every
//! message) keeps its entry: when that fires, the connection's task is woken,
//! sees the deadline is later, and registers once more. So a busy connection
//! registers about once per deadline period, not once per message, and one
//! with no deadline costs nothing. The thread sleeps on a condition variable
//! until the earliest entry is due, fires every due entry (wakes its task),
//! and drops disarmed entries as they reach the top of the heap.
//!
//! Like the runtimes' timers this has the resolution of the operating
//! system's timed waits (about a millisecond), and a deadline fires at or
//! after its instant, never before. It follows the real clock (tokio's
//! `time::pause` does not move it).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One registration's state.
const ARMED: u8 = 0;
const FIRED: u8 = 1;
const DROPPED: u8 = 2;

#[derive(Debug)]
struct Entry {
    at: Instant,
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Entry {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

/// A heap item: the earliest `at` on top.
#[derive(Debug)]
struct Due(Arc<Entry>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0.at == other.0.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.0.at.cmp(&self.0.at) // reversed: BinaryHeap is a max-heap
    }
}

#[derive(Debug, Default)]
struct Service {
    heap: Mutex<BinaryHeap<Due>>,
    changed: Condvar,
}

impl Service {
    fn get() -> &'static Service {
        static SERVICE: OnceLock<&'static Service> = OnceLock::new();
        SERVICE.get_or_init(|| {
            let service: &'static Service = Box::leak(Box::default());
            std::thread::Builder::new()
                .name("crest-timer".into())
                .spawn(|| service.run())
                .expect("crest: cannot start the timer thread");
            service
        })
    }

    fn register(&self, at: Instant, waker: &Waker) -> Arc<Entry> {
        let entry = Arc::new(Entry { at, state: AtomicU8::new(ARMED), waker: Mutex::new(Some(waker.clone())) });
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = heap.peek().is_none_or(|top| at < top.0.at);
        heap.push(Due(entry.clone()));
        drop(heap);
        if earliest {
            self.changed.notify_one();
        }
        entry
    }

    fn run(&self) {
        let mut due = Vec::new();
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            while let Some(top) = heap.peek() {
                if top.0.state() == DROPPED {
                    heap.pop();
                } else if top.0.at <= now {
                    due.extend(heap.pop());
                } else {
                    break;
                }
            }
            if !due.is_empty() {
                drop(heap);
                for Due(entry) in due.drain(..) {
                    entry.state.store(FIRED, Ordering::Release);
                    let waker = entry.waker.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            heap = match heap.peek().map(|top| top.0.at - now) {
                Some(wait) => self.changed.wait_timeout(heap, wait).unwrap_or_else(PoisonError::into_inner).0,
                None => self.changed.wait(heap).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// A deadline that holds memory only while armed (one small entry, shared
/// with the timer thread). Dropping or disarming it cancels it.
#[derive(Debug, Default)]
pub struct Deadline(Option<Arc<Entry>>);

impl Deadline {
    /// Arms (or, with `None`, disarms) the timer for `deadline` and
    /// registers `cx`'s waker; returns whether `deadline` has passed. Reads
    /// the clock only when it must register.
    #[inline]
    pub fn poll(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> bool {
        match deadline {
            None => {
                if self.0.is_some() {
                    self.disarm();
                }
                false
            }
            Some(deadline) => self.poll_at(cx, deadline),
        }
    }

    fn poll_at(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        if let Some(entry) = &self.0 {
            if entry.at <= deadline {
                // Registered for the deadline or before it.
                if entry.state() != FIRED {
                    entry.set_waker(cx.waker());
                    if entry.state() != FIRED {
                        return false;
                    }
                }
                // Fired: the thread saw the clock at or past `entry.at`.
                let at = entry.at;
                self.0 = None;
                if at == deadline {
                    return true;
                }
                // It fired for an earlier deadline, since moved later.
            } else {
                self.disarm(); // moved earlier: register anew
            }
        }
        if deadline <= Instant::now() {
            return true;
        }
        self.0 = Some(Service::get().register(deadline, cx.waker()));
        false
    }

    /// Cancels the registration, if any.
    pub fn disarm(&mut self) {
        if let Some(entry) = self.0.take() {
            let _ = entry.state.compare_exchange(ARMED, DROPPED, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A future that completes once `at` has passed (on the timer thread).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    at: Instant,
    deadline: Deadline,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.deadline.poll(cx, Some(this.at)) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Sleeps until `at`.
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep { at, deadline: Deadline::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    /// Counts wake-ups and lets a test wait for the next one.
    #[derive(Default)]
    struct Flag {
        wakes: AtomicUsize,
        lock: Mutex<()>,
        cv: Condvar,
    }

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            let _guard = self.lock.lock().unwrap();
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.cv.notify_all();
        }
    }

    impl Flag {
        fn wait_for(&self, wakes: usize) {
            let guard = self.lock.lock().unwrap();
            let (_guard, timeout) = self
                .cv
                .wait_timeout_while(guard, Duration::from_secs(10), |_| self.wakes.load(Ordering::SeqCst) < wakes)
                .unwrap();
            assert!(!timeout.timed_out(), "no wake-up within 10 s");
        }
    }

    fn context(flag: &Arc<Flag>) -> Waker {
        Waker::from(flag.clone())
    }

    #[test]
    fn fires_at_or_after_its_instant_and_wakes_the_task() {
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let mut d = Deadline::default();
        let at = Instant::now() + Duration::from_millis(30);
        assert!(!d.poll(&mut cx, Some(at)));
        flag.wait_for(1);
        assert!(Instant::now() >= at);
        assert!(d.poll(&mut cx, Some(at)));
        assert!(d.0.is_none(), "a fired deadline holds no entry");
    }

    #[test]
    fn a_deadline_moved_later_fires_once_at_the_new_instant() {
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let mut d = Deadline::default();
        let first = Instant::now() + Duration::from_millis(20);
        // Far enough apart that a slow, loaded machine still polls between them.
        let later = first + Duration::from_millis(300);
        assert!(!d.poll(&mut cx, Some(first)));
        assert!(!d.poll(&mut cx, Some(later)), "moving later keeps the first registration");
        flag.wait_for(1); // the first registration fires early for `later`
        assert!(!d.poll(&mut cx, Some(later)), "not yet: re-registered for the later instant");
        flag.wait_for(2);
        assert!(Instant::now() >= later);
        assert!(d.poll(&mut cx, Some(later)));
    }

    #[test]
    fn a_deadline_moved_earlier_or_disarmed_is_replaced_or_cancelled() {
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let mut d = Deadline::default();
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(!d.poll(&mut cx, Some(far)));
        let old = d.0.clone().unwrap();
        let near = Instant::now() + Duration::from_millis(20);
        assert!(!d.poll(&mut cx, Some(near)));
        assert_eq!(old.state(), DROPPED, "the later registration is cancelled");
        flag.wait_for(1);
        assert!(d.poll(&mut cx, Some(near)));

        assert!(!d.poll(&mut cx, Some(far)));
        let armed = d.0.clone().unwrap();
        assert!(!d.poll(&mut cx, None));
        assert_eq!(armed.state(), DROPPED);
        assert!(d.0.is_none());
    }

    #[test]
    fn a_passed_deadline_is_reported_without_registering() {
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let mut d = Deadline::default();
        assert!(d.poll(&mut cx, Some(Instant::now())));
        assert!(d.0.is_none());
    }

    #[test]
    fn many_deadlines_all_fire() {
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let start = Instant::now();
        // Registered in reverse order: the heap, not the order of calls, decides.
        let mut deadlines: Vec<(Instant, Deadline)> = (0..20u64)
            .rev()
            .map(|i| {
                let at = start + Duration::from_millis(10 + 5 * i);
                let mut d = Deadline::default();
                assert!(!d.poll(&mut cx, Some(at)));
                (at, d)
            })
            .collect();
        flag.wait_for(20);
        for (at, d) in &mut deadlines {
            assert!(d.poll(&mut cx, Some(*at)));
        }
    }

    #[test]
    fn sleep_until_completes_after_its_instant() {
        let at = Instant::now() + Duration::from_millis(15);
        let flag = Arc::new(Flag::default());
        let waker = context(&flag);
        let mut cx = Context::from_waker(&waker);
        let mut sleep = sleep_until(at);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        flag.wait_for(1);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_ready());
        assert!(Instant::now() >= at);
    }
}
