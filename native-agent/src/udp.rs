//! The runtime the agent's WebRTC peers run on: webrtc's own (Tokio), except for a UDP socket
//! whose batching state quinn-udp cannot set up — then a plain socket, one datagram per call.
//! Some Windows network stacks refuse an option quinn-udp asks about (Wine 8 answers `IPV6_V6ONLY`
//! on an IPv4 socket with WSAEOPNOTSUPP), and without this every peer connection there fails.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

/// webrtc's runtime, with plain UDP sockets where its own cannot be made.
#[derive(Debug)]
pub struct Fallback(Arc<dyn Runtime>);

impl Fallback {
    /// None when webrtc was built without a runtime.
    pub fn runtime() -> Option<Arc<dyn Runtime>> {
        webrtc::runtime::default_runtime().map(|r| Arc::new(Fallback(r)) as Arc<dyn Runtime>)
    }
}

impl Runtime for Fallback {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        match self.0.wrap_udp_socket(socket.try_clone()?) {
            Ok(batched) => Ok(batched),
            Err(e) => {
                eprintln!("udc-agent: UDP without batching ({e})");
                Ok(Arc::new(Plain::new(socket)?))
            }
        }
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio with plain UDP fallback"
    }
}

/// Windows' "message too long" (winerror.h): no other system uses the number for sockets.
const WSAEMSGSIZE: i32 = 10040;

/// A UDP socket that sends and receives one datagram per call, with no socket options beyond
/// the system's defaults.
#[derive(Debug)]
pub struct Plain(tokio::net::UdpSocket);

impl Plain {
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Plain> {
        socket.set_nonblocking(true)?;
        Ok(Plain(tokio::net::UdpSocket::from_std(socket)?))
    }
}

impl AsyncUdpSocket for Plain {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        // One datagram: a batch (segment_size) is never asked of a socket that says it sends one.
        self.0
            .poll_send_to(cx, transmit.contents, transmit.destination)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            let mut read = tokio::io::ReadBuf::new(buf);
            return match self.0.poll_recv_from(cx, &mut read) {
                Poll::Ready(Ok(addr)) => {
                    let len = read.filled().len();
                    let mut got = RecvMeta::default();
                    got.addr = addr;
                    got.len = len;
                    // A zero stride would make the reader's de-segmenting divide by zero.
                    got.stride = len.max(1);
                    *m = got;
                    Poll::Ready(Ok(1))
                }
                // A datagram larger than the buffer: Windows refuses it (WSAEMSGSIZE) where Unix
                // cuts it short. Either way it is no packet of ours; one sent on purpose must not
                // end the connection.
                Poll::Ready(Err(e)) if e.raw_os_error() == Some(WSAEMSGSIZE) => continue,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_sockets_carry_datagrams_both_ways_with_their_sender() {
        let bind = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (Plain::new(bind()).unwrap(), Plain::new(bind()).unwrap());
        let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a.send_to(b"offer", b_at).await.unwrap(), 5);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"offer"[..], a_at));
        b.send_to(b"", a_at).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (0, b_at));
    }

    #[tokio::test]
    async fn the_runtime_wraps_sockets_as_webrtc_would_where_it_can() {
        let runtime = Fallback::runtime().unwrap();
        let socket = runtime
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        // Linux offers what quinn-udp asks for: its batching socket, not the plain one.
        assert!(!format!("{socket:?}").starts_with("Plain"), "{socket:?}");
    }
}
