//! A connection to a container: over TCP at its bridge address, or over its Unix socket when its
//! runtime serves one (lib/sockets.ts). The socket costs both sides far less kernel time a request,
//! and its path names the instance, so no other container can answer on it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::Instance;

/** How long a connection to a socket whose backlog is full waits before it tries again. */
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_millis(2);

pub enum Upstream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Upstream {
    /** Connects to the instance: its socket when it has one, else its address. */
    pub async fn connect(instance: &Instance) -> io::Result<Upstream> {
        match &instance.socket {
            // A Unix listener whose backlog is full refuses at once (EAGAIN) where TCP would send its
            // SYN again: the instance is busy, not gone; the caller's deadline bounds the wait.
            Some(path) => loop {
                match UnixStream::connect(path).await {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => tokio::time::sleep(BUSY_RETRY).await,
                    connected => return Ok(Upstream::Unix(connected?)),
                }
            },
            None => {
                let sock = TcpStream::connect(instance.addr).await?;
                let _ = sock.set_nodelay(true);
                Ok(Upstream::Tcp(sock))
            }
        }
    }

    /** Whether the instance takes connections where its requests go (the liveness probe). */
    pub async fn accepts(instance: &Instance) -> bool {
        match &instance.socket {
            Some(path) => match UnixStream::connect(path).await {
                Ok(_) => true,
                // Its backlog is full: busy, and there.
                Err(error) => error.kind() == io::ErrorKind::WouldBlock,
            },
            None => TcpStream::connect(instance.addr).await.is_ok(),
        }
    }
}

/**
 * Marks a socket whose last read took all there was as drained, so the next read waits for the
 * poller instead of asking the kernel first and being told to wait (a system call saved each time).
 */
pub trait Drain {
    fn drained(&self);
}

impl Drain for TcpStream {
    fn drained(&self) {
        let _ = self.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
}

impl Drain for UnixStream {
    fn drained(&self) {
        let _ = self.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
}

impl Drain for Upstream {
    fn drained(&self) {
        match self {
            Upstream::Tcp(s) => s.drained(),
            Upstream::Unix(s) => s.drained(),
        }
    }
}

impl AsyncRead for Upstream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Upstream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
