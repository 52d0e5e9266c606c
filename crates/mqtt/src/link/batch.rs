//! Publishes submitted under one lock ([`Link::batch`](super::Link::batch)). A sink with
//! many messages ready took the shared state's lock, and woke nobody, once per message
//! (a lock and an unlock are about a twentieth of a message's instructions); a batch takes
//! it once per [`HOLD_MAX`] messages, and wakes the writer and the owner when it lets it go.

use std::sync::MutexGuard;

use backplane_model::Timestamp;

use bytes::BytesMut;

use super::{InPlaceMessage, InPlaceSubmit, LinkClosed, Outgoing, Shared, State, Submit, lock, take_stamp};
use crate::settings::{Protocol, Qos};

/// Publishes encoded before the batch lets the lock go and takes it again: the connection
/// task (writing, reading acknowledgements) waits for the lock meanwhile, so a batch of
/// thousands (up to the buffer's 1 MiB) holds it for tens of microseconds at a time, not
/// a millisecond, and the writer starts on the first ones.
const HOLD_MAX: usize = 256;

/// Publishes submitted under one lock of a link's shared state. Hold it only between
/// awaits: while it lives, the connection task cannot write or take confirmations.
pub struct PublishBatch<'a> {
    /// `None` once dropped.
    state: Option<MutexGuard<'a, State>>,
    shared: &'a Shared,
    protocol: Protocol,
    next_token: &'a mut u64,
    unstamped: &'a mut u32,
    recording_delay: bool,
    wake_writer: bool,
    wake_owner: bool,
    /// Publishes encoded since the lock was taken.
    held: usize,
}

impl<'a> PublishBatch<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        protocol: Protocol,
        next_token: &'a mut u64,
        unstamped: &'a mut u32,
        recording_delay: bool,
    ) -> PublishBatch<'a> {
        PublishBatch {
            state: Some(lock(&shared.state)),
            shared,
            protocol,
            next_token,
            unstamped,
            recording_delay,
            wake_writer: false,
            wake_owner: false,
            held: 0,
        }
    }

    /// Lets the lock go, then wakes whom the publishes so far need woken.
    fn release(&mut self) {
        drop(self.state.take());
        if std::mem::take(&mut self.wake_writer) {
            self.shared.to_writer.notify_one();
        }
        if std::mem::take(&mut self.wake_owner) {
            self.shared.to_owner.notify_one();
        }
    }

    /// After [`HOLD_MAX`] publishes, lets the lock go (waking whom they need woken) and
    /// takes it again.
    fn pause_if_held_long(&mut self) {
        if self.held >= HOLD_MAX {
            self.release();
            self.state = Some(lock(&self.shared.state));
            self.held = 0;
        }
    }

    /// Publishes not yet confirmed, rejected or lost ([`Link::outstanding`](super::Link::outstanding)).
    pub fn outstanding(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.tracker.outstanding())
    }

    /// [`Link::publish_stamped`](super::Link::publish_stamped) without waiting: the
    /// publish's token, [`LinkClosed`] if the session has ended, or `None`, with nothing
    /// submitted and no token used, if the outgoing buffer or the window is full.
    pub fn publish_stamped(
        &mut self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: &[u8],
        born: Option<Timestamp>,
    ) -> Option<Result<u64, LinkClosed>> {
        self.pause_if_held_long();
        let state = self.state.as_mut()?;
        let token = *self.next_token;
        let message = Outgoing {
            topic,
            qos,
            retain,
            payload,
        };
        let (unstamped, recording) = (&mut *self.unstamped, self.recording_delay);
        match state.submit(self.protocol, token, &message, || {
            take_stamp(unstamped, recording, born)
        }) {
            Submit::Encoded { was_empty } => self.wake_writer |= was_empty,
            Submit::Rejected => self.wake_owner = true,
            Submit::Closed => return Some(Err(LinkClosed)),
            Submit::NoRoom => return None,
        }
        *self.next_token += 1;
        self.held += 1;
        Some(Ok(token))
    }
}

/// What became of a publish offered with [`PublishBatch::publish_in_place`].
#[derive(Debug)]
pub enum InPlace {
    /// Submitted (written, or refused as too large for the broker and reported so) as
    /// this token.
    Taken(u64),
    /// The outgoing buffer or the window is full: nothing submitted, no token used.
    NoRoom,
    /// The session has ended.
    Closed,
    /// Not written (the payload's writer declined, or the topic is over 65 535 bytes):
    /// nothing submitted, no token used; send it with
    /// [`publish_stamped`](PublishBatch::publish_stamped), which says why it cannot go.
    Unwritten,
}

impl PublishBatch<'_> {
    /// [`publish_stamped`](Self::publish_stamped) of message `m`, whose payload `payload`
    /// writes straight into the outgoing buffer: no payload buffer of the caller's, and no
    /// copy of it.
    pub fn publish_in_place(
        &mut self,
        m: &InPlaceMessage<'_>,
        payload: impl FnOnce(&mut BytesMut) -> bool,
    ) -> InPlace {
        self.pause_if_held_long();
        let Some(state) = self.state.as_mut() else {
            return InPlace::NoRoom;
        };
        let token = *self.next_token;
        let (unstamped, recording) = (&mut *self.unstamped, self.recording_delay);
        match state.submit_in_place(self.protocol, token, m, payload, || {
            take_stamp(unstamped, recording, m.born)
        }) {
            InPlaceSubmit::Done(Submit::Encoded { was_empty }) => self.wake_writer |= was_empty,
            InPlaceSubmit::Done(Submit::Rejected) => self.wake_owner = true,
            InPlaceSubmit::Done(Submit::Closed) => return InPlace::Closed,
            InPlaceSubmit::Done(Submit::NoRoom) => return InPlace::NoRoom,
            InPlaceSubmit::Unwritten => return InPlace::Unwritten,
        }
        *self.next_token += 1;
        self.held += 1;
        InPlace::Taken(token)
    }
}

impl std::fmt::Debug for PublishBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishBatch")
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl Drop for PublishBatch<'_> {
    fn drop(&mut self) {
        // Unlocked first: whoever is woken takes the lock at once.
        self.release();
    }
}
