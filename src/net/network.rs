//! The sockets a node uses, behind a small trait so that tests can run the
//! real node code over a simulated network (turmoil) instead of TCP.
//!
//! [`TcpNetwork`] (tokio TCP, `TCP_NODELAY` set) is what
//! [`crate::node::Node::start`] uses; [`crate::node::Node::start_with`]
//! takes any other [`Network`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future, as the [`Network`] and [`Listener`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream to a peer: anything readable and writable (blanket
/// implementation).
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for T {}

/// An open connection, as [`Network::connect`] and [`Listener::accept`]
/// return it.
pub type BoxConnection = Box<dyn Connection>;

/// A bound listener.
pub trait Listener: Send + Sync + 'static {
    /// Waits for the next inbound connection and its remote address.
    /// Cancel-safe: dropping the future loses no connection.
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>>;
    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// How a node listens and dials.
pub trait Network: Send + Sync + std::fmt::Debug + 'static {
    /// Binds a listener to `addr`.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
    /// Opens a connection to `addr` (the caller applies its own timeout).
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxConnection>>;
}

/// Tokio TCP sockets, with `TCP_NODELAY` on every connection. The default
/// [`Network`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNetwork;

impl Network for TcpNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TcpListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxConnection>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as BoxConnection)
        })
    }
}

/// The [`Listener`] of [`TcpNetwork`].
struct TcpListener(tokio::net::TcpListener);

impl Listener for TcpListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as BoxConnection, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
