//! Acknowledgements gathered by the kernel: the reader is woken once the ones it expects
//! have arrived, not for each segment.
//!
//! A broker answers every QoS 1 publish with a PUBACK, and Mosquitto writes each on its
//! own: a batch of publishes comes back as a trickle of segments, and a socket watched for
//! readability woke the gateway (a context switch, an `epoll_wait`, a `recvfrom`) every few
//! of them, about 630 times a second at 10 000 messages a second (docs/performance.md).
//!
//! Linux's receive low-water mark (`SO_RCVLOWAT`) makes the socket readable only once that
//! many bytes are waiting (or the connection ended or failed). An acknowledgement is at
//! least [`ACK_BYTES`] long, so the reader sets the mark to what the acknowledgements it
//! awaits take at least, up to half the window, so that a full window is refilled while
//! the rest come. A broker may answer more slowly or not at all (a PINGRESP or a command's
//! PUBLISH has its own few bytes), so a mark above one lasts [`GATHER_FOR`] at most: then
//! it is lowered to one byte, which the kernel signals at once if anything is waiting.
//!
//! The option is declared with nix's `sockopt_impl!`, nix's documented way to add one it
//! does not list; the system call is nix's. Elsewhere than Linux the reader is woken as
//! before.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// The fewest bytes of one acknowledgement: PUBACK, PUBREC and PUBCOMP take four (fixed
/// header and packet id) in MQTT 3.1.1 and 5, a SUBACK five.
pub(super) const ACK_BYTES: usize = 4;

/// The longest a raised mark waits for what it expects.
pub(super) const GATHER_FOR: Duration = Duration::from_millis(2);

/// The highest mark set: 2 048 acknowledgements. Far below the receive buffer, which the
/// kernel would otherwise grow to hold the mark.
const MOST: usize = 8 * 1024;

#[cfg(target_os = "linux")]
mod option {
    // The macro's expansion names these.
    use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};

    sockopt_impl!(
        /// `SO_RCVLOWAT`, an `int`.
        RcvLowat,
        Both,
        libc::SOL_SOCKET,
        libc::SO_RCVLOWAT,
        usize
    );
}

/// The receive low-water mark of one connection.
pub(super) struct Gather {
    socket: OwnedFd,
    /// The mark now set.
    mark: usize,
    /// The system refused the option: the reader is woken as data comes, as without it.
    refused: bool,
}

impl Gather {
    /// For `socket` (a descriptor of the connection's socket, which it keeps open).
    pub(super) fn new(socket: &impl AsFd) -> io::Result<Gather> {
        Ok(Gather {
            socket: socket.as_fd().try_clone_to_owned()?,
            mark: 1,
            refused: false,
        })
    }

    /// Wake the reader once the acknowledgements of `awaiting` packets may have come, of
    /// a window of `window`; returns whether the mark is above one byte.
    ///
    /// One acknowledgement comes in one segment: a mark for it alone would wake the reader
    /// no later than one byte does, for two system calls (raised, then lowered).
    pub(super) fn expect(&mut self, awaiting: usize, window: usize) -> bool {
        let mark = if awaiting < 2 {
            1
        } else {
            awaiting.min(window / 2).saturating_mul(ACK_BYTES).clamp(1, MOST)
        };
        self.set(mark);
        self.mark > 1
    }

    /// Wake the reader for anything that arrives.
    pub(super) fn any(&mut self) {
        self.set(1);
    }

    #[cfg(target_os = "linux")]
    fn set(&mut self, mark: usize) {
        if mark == self.mark || self.refused {
            return;
        }
        match nix::sys::socket::setsockopt(&self.socket, option::RcvLowat, &mark) {
            Ok(()) => self.mark = mark,
            Err(e) => {
                // A sandbox or an old kernel: costs wake-ups, never data.
                tracing::warn!(error = %e, "mqtt: the socket refuses a receive low-water mark; acknowledgements are read as they come");
                self.refused = true;
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn set(&mut self, _mark: usize) {}

    /// The mark the kernel has now (for tests).
    #[cfg(all(test, target_os = "linux"))]
    fn kernel_mark(&self) -> usize {
        nix::sys::socket::getsockopt(&self.socket, option::RcvLowat).unwrap_or(0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::io::Write;
    use std::time::Instant;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (tokio::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().unwrap();
        theirs.set_nodelay(true).unwrap();
        (ours, theirs)
    }

    #[test]
    fn the_mark_is_what_the_awaited_acknowledgements_take_at_least_up_to_half_the_window() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (ours, _theirs) = pair().await;
            let mut g = Gather::new(&ours).unwrap();
            assert!(g.expect(10, 256));
            assert_eq!(g.kernel_mark(), 40);
            g.expect(1000, 256);
            assert_eq!(g.kernel_mark(), 512, "half of the window");
            assert!(!g.expect(0, 256));
            assert_eq!(g.kernel_mark(), 1);
            assert!(g.expect(2, 256));
            assert_eq!(g.kernel_mark(), 8);
            assert!(!g.expect(1, 256), "no mark for one acknowledgement");
            assert_eq!(g.kernel_mark(), 1);
            g.expect(5, 256);
            g.any();
            assert_eq!(g.kernel_mark(), 1);
        });
    }

    #[test]
    fn the_reader_is_woken_once_the_expected_bytes_are_in_and_at_once_when_the_mark_is_lowered() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut ours, mut theirs) = pair().await;
            let mut g = Gather::new(&ours).unwrap();
            g.expect(3, 256);
            let mut buf = [0u8; 64];
            // Two acknowledgements of three: not readable yet.
            theirs.write_all(&[0x40, 2, 0, 1, 0x40, 2, 0, 2]).unwrap();
            let early = tokio::time::timeout(Duration::from_millis(100), ours.read(&mut buf)).await;
            assert!(early.is_err(), "woken before the third acknowledgement came");
            // The third: all twelve bytes in one read.
            theirs.write_all(&[0x40, 2, 0, 3]).unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), ours.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 12);
            // Two bytes while twelve are expected, then the mark lowered: read at once.
            g.expect(3, 256);
            theirs.write_all(&[0xd0, 0]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            g.any();
            let start = Instant::now();
            let n = tokio::time::timeout(Duration::from_secs(5), ours.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 2);
            assert!(start.elapsed() < Duration::from_secs(1));
        });
    }

    #[test]
    fn the_end_of_the_connection_wakes_the_reader_whatever_the_mark() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut ours, theirs) = pair().await;
            let mut g = Gather::new(&ours).unwrap();
            g.expect(100, 256);
            drop(theirs);
            let mut buf = [0u8; 8];
            let n = tokio::time::timeout(Duration::from_secs(5), ours.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 0);
        });
    }

    #[test]
    fn a_descriptor_that_refuses_the_mark_is_left_without_one() {
        let file = tempfile::tempfile().unwrap();
        let mut g = Gather::new(&file).unwrap();
        assert!(!g.expect(10, 256), "not a socket: no mark");
        assert!(g.refused);
        assert!(!g.expect(20, 256));
    }
}
