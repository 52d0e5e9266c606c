//! Several Modbus TCP requests outstanding on one connection (`in_flight`): which to send
//! next, which answer belongs to which request, and when one has waited too long. I/O-free,
//! time passed in; the source's lane drives it over a [`Connection`](crate::client::Connection).
//!
//! The Modbus TCP specification lets a client send its next request before the last is
//! answered: the server echoes each request's transaction id, and may answer out of order
//! (a gateway to several serial lines does). One round trip then carries many requests,
//! and the answers that arrive together are handed on together.
//!
//! The same outcomes as one request at a time ([`Connection::call_with_retries`](crate::client::Connection::call_with_retries)):
//! a timeout or a malformed answer is retried (as a new request, with a new transaction
//! id, so a late answer to the old one is recognised and dropped); an exception is an
//! answer; once a unit has let a request time out after its retries, its requests not sent
//! yet count as timed out without being sent.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::CallError;
use crate::frame::{self, FrameError, Reply, Request};

/// A request on the wire, waiting for its answer.
#[derive(Debug)]
struct Pending {
    job: usize,
    transaction: u16,
    deadline: Instant,
    attempt: u32,
}

/// The requests of one cycle on one connection, up to `capacity` of them outstanding.
#[derive(Debug)]
pub struct Window<'a> {
    jobs: &'a [(u8, Request)],
    /// Jobs still to send, with the attempt they are at.
    queue: VecDeque<(usize, u32)>,
    pending: Vec<Pending>,
    ready: VecDeque<(usize, Result<Reply, CallError>)>,
    /// Units that let a request time out after its retries in this cycle.
    silent: Vec<u8>,
    capacity: usize,
    retries: u32,
    timeout: Duration,
}

impl<'a> Window<'a> {
    /// The jobs `mine` (indices into `jobs`), at most `capacity` outstanding at a time.
    pub fn new(
        jobs: &'a [(u8, Request)],
        mine: impl IntoIterator<Item = usize>,
        capacity: usize,
        retries: u32,
        timeout: Duration,
    ) -> Window<'a> {
        Window {
            jobs,
            queue: mine
                .into_iter()
                .filter(|&j| j < jobs.len())
                .map(|j| (j, 0))
                .collect(),
            pending: Vec::with_capacity(capacity),
            ready: VecDeque::new(),
            silent: Vec::new(),
            capacity: capacity.max(1),
            retries,
            timeout,
        }
    }

    /// The next request to send, if the window has room: its job, unit and request.
    /// Requests for a silent unit are answered with a timeout instead (see [`Window::take_ready`]).
    pub fn next_to_send(&mut self) -> Option<(usize, u8, &'a Request)> {
        while self.pending.len() < self.capacity {
            let (job, attempt) = self.queue.front().copied()?;
            let (unit, request) = self.jobs.get(job)?;
            if attempt == 0 && self.silent.contains(unit) {
                self.queue.pop_front();
                self.ready.push_back((job, Err(CallError::Timeout(self.timeout))));
                continue;
            }
            return Some((job, *unit, request));
        }
        None
    }

    /// The request [`Window::next_to_send`] returned went out as `transaction` at `now`.
    pub fn sent(&mut self, job: usize, transaction: u16, now: Instant) {
        let Some(at) = self.queue.iter().position(|&(j, _)| j == job) else {
            return;
        };
        let Some((job, attempt)) = self.queue.remove(at) else {
            return;
        };
        self.pending.push(Pending {
            job,
            transaction,
            deadline: now + self.timeout,
            attempt,
        });
    }

    /// The request [`Window::next_to_send`] returned could not be encoded: it fails as is.
    pub fn unsendable(&mut self, job: usize, error: FrameError) {
        if let Some(at) = self.queue.iter().position(|&(j, _)| j == job) {
            self.queue.remove(at);
            self.ready.push_back((job, Err(CallError::Frame(error))));
        }
    }

    /// A frame arrived. Returns false when no outstanding request has its transaction id:
    /// the late answer to a request already given up, skipped.
    pub fn answer(&mut self, transaction: u16, unit: u8, pdu: &[u8]) -> bool {
        let Some(at) = self.pending.iter().position(|p| p.transaction == transaction) else {
            return false;
        };
        let p = self.pending.swap_remove(at);
        let Some((expected, request)) = self.jobs.get(p.job) else {
            return true;
        };
        match frame::decode_answer(*expected, request, unit, pdu) {
            Ok(reply) => self.ready.push_back((p.job, Ok(reply))),
            Err(_) if p.attempt < self.retries => self.queue.push_front((p.job, p.attempt + 1)),
            Err(e) => self.ready.push_back((p.job, Err(CallError::Frame(e)))),
        }
        true
    }

    /// When the oldest outstanding request times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    /// Gives up on the requests whose deadline has passed at `now`: each is sent again or,
    /// out of retries, times out and silences its unit for the rest of the cycle.
    pub fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(p) = self.pending.get(i) {
            if p.deadline > now {
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            if p.attempt < self.retries {
                self.queue.push_front((p.job, p.attempt + 1));
            } else {
                if let Some((unit, _)) = self.jobs.get(p.job)
                    && !self.silent.contains(unit)
                {
                    self.silent.push(*unit);
                }
                self.ready
                    .push_back((p.job, Err(CallError::Timeout(self.timeout))));
            }
        }
    }

    /// The next finished job and its outcome.
    pub fn take_ready(&mut self) -> Option<(usize, Result<Reply, CallError>)> {
        self.ready.pop_front()
    }

    /// True when something is waiting to be sent or answered.
    pub fn is_busy(&self) -> bool {
        !self.queue.is_empty() || !self.pending.is_empty()
    }

    /// A job on the wire (or still to send) to blame a lost connection on.
    pub fn any_job(&self) -> Option<usize> {
        self.pending
            .first()
            .map(|p| p.job)
            .or_else(|| self.queue.front().map(|&(j, _)| j))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::address::Area;
    use crate::frame::Data;
    use tokio_modbus::ExceptionCode;

    const TIMEOUT: Duration = Duration::from_millis(100);

    fn read(start: u16) -> Request {
        Request::Read {
            area: Area::HoldingRegister,
            start,
            count: 1,
        }
    }

    /// A finished job that got an answer from the device.
    fn replied(done: Option<(usize, Result<Reply, CallError>)>) -> (usize, Reply) {
        let (job, result) = done.expect("a finished job");
        (job, result.expect("an answer"))
    }

    fn answer_pdu(value: u16) -> Vec<u8> {
        let [hi, lo] = value.to_be_bytes();
        vec![3, 2, hi, lo]
    }

    /// Sends what the window allows, numbering transactions from `next`.
    fn send_all(w: &mut Window<'_>, next: &mut u16, now: Instant) -> Vec<(usize, u16)> {
        let mut sent = Vec::new();
        while let Some((job, _, _)) = w.next_to_send() {
            *next += 1;
            w.sent(job, *next, now);
            sent.push((job, *next));
        }
        sent
    }

    #[test]
    fn no_more_than_the_capacity_is_outstanding_and_each_answer_makes_room_for_one() {
        let jobs: Vec<_> = (0..5).map(|i| (1, read(i))).collect();
        let mut w = Window::new(&jobs, 0..5, 2, 0, TIMEOUT);
        let (now, mut t) = (Instant::now(), 0);
        assert_eq!(send_all(&mut w, &mut t, now), vec![(0, 1), (1, 2)]);
        assert!(w.answer(2, 1, &answer_pdu(7)));
        assert_eq!(w.take_ready().unwrap().0, 1);
        assert_eq!(send_all(&mut w, &mut t, now), vec![(2, 3)]);
    }

    #[test]
    fn answers_out_of_order_reach_their_own_requests() {
        let jobs = vec![(1, read(0)), (2, read(10))];
        let mut w = Window::new(&jobs, 0..2, 4, 0, TIMEOUT);
        let (now, mut t) = (Instant::now(), 100);
        send_all(&mut w, &mut t, now);
        assert!(w.answer(102, 2, &answer_pdu(20)));
        assert!(w.answer(101, 1, &answer_pdu(10)));
        assert_eq!(replied(w.take_ready()), (1, Ok(Data::Registers(vec![20]))));
        assert_eq!(replied(w.take_ready()), (0, Ok(Data::Registers(vec![10]))));
        assert!(!w.is_busy());
    }

    #[test]
    fn a_late_answer_to_a_request_given_up_is_not_taken_for_its_retry() {
        let jobs = vec![(1, read(0))];
        let mut w = Window::new(&jobs, 0..1, 4, 1, TIMEOUT);
        let (start, mut t) = (Instant::now(), 0);
        send_all(&mut w, &mut t, start);
        w.expire(start + TIMEOUT);
        assert!(w.take_ready().is_none(), "a retry, not a failure yet");
        assert_eq!(send_all(&mut w, &mut t, start + TIMEOUT), vec![(0, 2)]);
        assert!(
            !w.answer(1, 1, &answer_pdu(1)),
            "the first request's answer is stale"
        );
        assert!(w.answer(2, 1, &answer_pdu(2)));
        assert_eq!(replied(w.take_ready()), (0, Ok(Data::Registers(vec![2]))));
    }

    #[test]
    fn a_unit_out_of_retries_times_out_its_unsent_requests_without_sending_them() {
        let jobs = vec![(1, read(0)), (2, read(0)), (1, read(10)), (2, read(10))];
        let mut w = Window::new(&jobs, 0..4, 2, 0, TIMEOUT);
        let (start, mut t) = (Instant::now(), 0);
        send_all(&mut w, &mut t, start);
        assert!(w.answer(2, 2, &answer_pdu(5)));
        assert_eq!(w.deadline(), Some(start + TIMEOUT));
        w.expire(start + TIMEOUT);
        // Unit 1 timed out: its second request is not sent, unit 2's is.
        assert_eq!(send_all(&mut w, &mut t, start + TIMEOUT), vec![(3, 3)]);
        let done: Vec<_> = std::iter::from_fn(|| w.take_ready()).collect();
        assert_eq!(done.len(), 3);
        assert!(matches!(done[1], (0, Err(CallError::Timeout(_)))));
        assert!(matches!(done[2], (2, Err(CallError::Timeout(_)))));
    }

    #[test]
    fn a_malformed_answer_is_retried_and_an_exception_is_an_answer() {
        let jobs = vec![(1, read(0)), (1, read(5))];
        let mut w = Window::new(&jobs, 0..2, 2, 1, TIMEOUT);
        let (now, mut t) = (Instant::now(), 0);
        send_all(&mut w, &mut t, now);
        assert!(
            w.answer(1, 1, &[3, 4, 0, 1, 0, 2]),
            "two registers for a read of one"
        );
        assert!(w.answer(2, 1, &[0x83, 2]));
        assert_eq!(
            replied(w.take_ready()),
            (1, Err(ExceptionCode::IllegalDataAddress))
        );
        assert_eq!(send_all(&mut w, &mut t, now), vec![(0, 3)], "sent again");
        assert!(w.answer(3, 7, &answer_pdu(1)), "from the wrong unit");
        assert!(matches!(
            w.take_ready().unwrap(),
            (0, Err(CallError::Frame(FrameError::Unit { expected: 1, got: 7 })))
        ));
    }
}
