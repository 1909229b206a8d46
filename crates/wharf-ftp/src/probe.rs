//! When an upload whose data connection ended is published, decided by one rule:
//!
//! **An upload whose data connection has ended is published unless, at that moment, the
//! client has closed its control connection without sending anything on it since the
//! transfer began.**
//!
//! In stream mode the end of the data connection is the end of the file, so a client that
//! finished and a client that died look the same on the data connection. A client that
//! finished is still there: it waits on the control connection for the `226`, or has said
//! something there (`QUIT`, which means "finish, then log out", `NOOP`, `STAT`, its TLS
//! close). A process that died says nothing: its kernel just closes its connections. So the
//! rule looks only at facts that do not depend on when the server looks: what the session's
//! reader has received since the transfer began ([`ControlActivity`]), and, through a second
//! descriptor on the control socket, whether the kernel holds the client's end of that
//! connection with nothing unread before it ([`PeerProbe`]).
//!
//! What the rule cannot catch: a killed client whose data connection's end reaches the server
//! before its control connection's end (its kernel releases the sockets last-opened first)
//! is, in stream mode, indistinguishable from one that finished, and its upload is published,
//! as every FTP server would. Over TLS, a record the TLS layer consumed without yielding a
//! byte or its end (half a record, a key update) is not seen by the reader; the kernel saw it
//! as sent only while it waited unread.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::RecvFlags;

/// A second handle on a control connection's socket: the kernel's view of the client.
#[derive(Debug)]
pub struct PeerProbe {
    socket: OwnedFd,
}

impl PeerProbe {
    /// A probe of `socket` (a duplicate of its descriptor, closed with the probe).
    pub fn of(socket: &impl AsFd) -> io::Result<PeerProbe> {
        Ok(PeerProbe { socket: socket.as_fd().try_clone_to_owned()? })
    }

    /// True when the client has closed or reset the connection and nothing it sent waits
    /// unread before that end. Asked without waiting and without reading.
    pub(crate) fn closed_with_nothing_unread(&self) -> bool {
        let mut byte = [0u8; 1];
        match rustix::net::recv(&self.socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((0, _)) => true,
            Ok(_) => false,
            Err(Errno::AGAIN | Errno::INTR) => false,
            Err(_) => true,
        }
    }

    /// The shortest round trip the kernel has measured on the connection (`tcpi_min_rtt`):
    /// how far away the client is, without the delays of its own replies that the smoothed
    /// estimate takes in. `None` when the kernel cannot say (not TCP, or nothing measured).
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        tcp_min_rtt(self.socket.as_fd())
    }
}

/// `getsockopt(TCP_INFO)`'s `tcpi_min_rtt`; no safe wrapper offers `TCP_INFO`.
#[allow(unsafe_code)]
fn tcp_min_rtt(socket: BorrowedFd<'_>) -> Option<Duration> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = libc::socklen_t::try_from(size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: `info` is a writable `tcp_info` of `len` bytes, all zero (a valid value of this
    // plain-integer struct), and the kernel writes at most `len` bytes into it and stores how
    // many in `len`; `socket` is a live descriptor borrowed for the call.
    let info = unsafe {
        let done = libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        );
        if done != 0 {
            return None;
        }
        info.assume_init()
    };
    // Kernels before 4.6 stop short of the field; an unmeasured one is all ones.
    let filled = usize::try_from(len).ok()?;
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_min_rtt) + size_of::<u32>();
    (filled >= needed && info.tcpi_min_rtt != u32::MAX)
        .then(|| Duration::from_micros(u64::from(info.tcpi_min_rtt)))
}

/// What the session's reader has received on the control connection, shared with the
/// transfers it runs.
#[derive(Debug, Default)]
pub(crate) struct ControlActivity {
    /// Grows whenever the reader receives bytes, decodes a line (one read before a transfer
    /// began may hold a command pipelined behind it), or reads the client's TLS close.
    heard: AtomicU64,
    /// The reader reached the end of the control connection (or it failed).
    ended: AtomicBool,
}

impl ControlActivity {
    /// The client sent something.
    pub(crate) fn heard(&self) {
        self.heard.fetch_add(1, Ordering::Relaxed);
    }

    /// The control connection ended.
    pub(crate) fn ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    fn heard_so_far(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// One upload's witness of its client, made when the transfer begins; the transfer asks it
/// when the data connection ends, the session when its reader sees the control connection
/// end first.
#[derive(Debug)]
pub(crate) struct UploadWitness {
    activity: Arc<ControlActivity>,
    heard_at_start: u64,
    probe: Option<Arc<PeerProbe>>,
    /// The data connection has ended and the verdict was to publish.
    data_ended: AtomicBool,
}

impl UploadWitness {
    /// A witness for an upload beginning now on a control connection whose reader reports to
    /// `activity`, and whose socket `probe` watches (`None` for streams that are no socket).
    pub(crate) fn new(
        activity: Arc<ControlActivity>,
        probe: Option<Arc<PeerProbe>>,
    ) -> UploadWitness {
        let heard_at_start = activity.heard_so_far();
        UploadWitness { activity, heard_at_start, probe, data_ended: AtomicBool::new(false) }
    }

    /// The rule (see the module): the client has closed its control connection without
    /// sending anything on it since the transfer began.
    fn client_vanished(&self) -> bool {
        let sent_something = self.activity.heard_so_far() != self.heard_at_start;
        !sent_something
            && (self.activity.has_ended()
                || self.probe.as_ref().is_some_and(|probe| probe.closed_with_nothing_unread()))
    }

    /// The upload's data connection has ended: whether to publish it.
    pub(crate) fn publish_at_data_end(&self) -> bool {
        let publish = !self.client_vanished();
        self.data_ended.store(publish, Ordering::Relaxed);
        publish
    }

    /// The session's reader saw the control connection end while the upload runs: whether
    /// the upload must be dropped now. It must when its data has not ended and the client
    /// sent nothing since the transfer began, since nothing can be sent any more: the rule's
    /// answer is already known. Otherwise it finishes, and the session closes after it.
    pub(crate) fn drop_at_control_end(&self) -> bool {
        !self.data_ended.load(Ordering::Relaxed) && self.client_vanished()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    /// A connected pair: the client's end and the server's, with a probe on the server's.
    fn connection() -> (TcpStream, TcpStream, Arc<PeerProbe>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_read_timeout(Some(Duration::from_secs(10))).expect("bound the waits");
        let probe = Arc::new(PeerProbe::of(&server).expect("probe"));
        (client, server, probe)
    }

    /// Waits (bounded) until the server's socket has something to read: bytes, or the
    /// client's end. Reads nothing.
    fn wait_for_input(server: &TcpStream) -> usize {
        server.peek(&mut [0u8; 16]).expect("input within the bound")
    }

    #[test]
    fn the_kernel_tells_a_closed_peer_from_a_quiet_or_talking_one() {
        let (mut client, mut server, probe) = connection();
        assert!(!probe.closed_with_nothing_unread(), "connected and quiet");
        client.write_all(b"QUIT\r\n").expect("write");
        drop(client);
        assert!(wait_for_input(&server) > 0);
        assert!(!probe.closed_with_nothing_unread(), "a command waits unread");
        let mut line = [0u8; 6];
        server.read_exact(&mut line).expect("read the command");
        assert_eq!(wait_for_input(&server), 0, "then the end");
        assert!(probe.closed_with_nothing_unread(), "closed, nothing left to read");
    }

    #[test]
    fn the_kernel_measures_a_loopback_round_trip_and_nothing_on_other_sockets() {
        let (mut client, mut server, probe) = connection();
        // A round trip: the kernel measures one once the reply's acknowledgement arrives.
        let mut byte = [0u8; 1];
        server.write_all(b"?").expect("write");
        client.read_exact(&mut byte).expect("read");
        client.write_all(b"!").expect("write");
        server.read_exact(&mut byte).expect("read");
        let rtt = probe.min_rtt().expect("measured on a TCP connection");
        assert!(rtt < Duration::from_secs(1), "{rtt:?}");
        let (unix, _other) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(PeerProbe::of(&unix).expect("probe").min_rtt(), None);
    }

    #[test]
    fn an_upload_is_dropped_only_when_its_client_closed_without_a_word() {
        // Closed, and nothing sent since the transfer began: vanished.
        let (client, server, probe) = connection();
        let activity = Arc::new(ControlActivity::default());
        activity.heard(); // the STOR itself, before the transfer began
        let witness = UploadWitness::new(activity.clone(), Some(probe));
        assert!(!witness.drop_at_control_end(), "still connected");
        drop(client);
        assert_eq!(wait_for_input(&server), 0);
        assert!(witness.drop_at_control_end(), "the kernel holds its end and nothing else");
        assert!(!witness.publish_at_data_end());

        // The same, seen by the session's reader instead of the kernel.
        let witness = UploadWitness::new(activity.clone(), None);
        assert!(witness.publish_at_data_end(), "nothing known: the client is there");
        let witness = UploadWitness::new(activity.clone(), None);
        activity.ended();
        assert!(witness.drop_at_control_end());
        assert!(!witness.publish_at_data_end());
    }

    #[test]
    fn anything_the_client_sent_since_the_transfer_began_keeps_the_upload() {
        // A QUIT the session has already read, then the close: the case the rule was written
        // for (the kernel alone shows a closed connection with nothing unread).
        let (mut client, mut server, probe) = connection();
        let activity = Arc::new(ControlActivity::default());
        let witness = UploadWitness::new(activity.clone(), Some(probe.clone()));
        client.write_all(b"QUIT\r\n").expect("write");
        drop(client);
        let mut line = [0u8; 6];
        server.read_exact(&mut line).expect("the session reads QUIT");
        activity.heard();
        assert_eq!(wait_for_input(&server), 0);
        assert!(probe.closed_with_nothing_unread());
        assert!(!witness.drop_at_control_end(), "QUIT: finish, then log out");
        assert!(witness.publish_at_data_end());

        // A QUIT still unread when the data ends, whether or not its close has arrived.
        let (mut client, server, probe) = connection();
        let witness = UploadWitness::new(Arc::new(ControlActivity::default()), Some(probe));
        client.write_all(b"QUIT\r\n").expect("write");
        drop(client);
        assert!(wait_for_input(&server) > 0);
        assert!(witness.publish_at_data_end());
    }

    #[test]
    fn a_verdict_to_publish_stands_when_the_control_connection_ends_afterwards() {
        let activity = Arc::new(ControlActivity::default());
        let witness = UploadWitness::new(activity.clone(), None);
        assert!(witness.publish_at_data_end());
        activity.ended();
        assert!(!witness.drop_at_control_end(), "the data ended first: it is being published");
    }
}
