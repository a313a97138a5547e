//! Opening a WebSocket to a backend Janus: name resolution off the shard, TCP connect,
//! the handshake.

use std::io;
use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::handshake;
use crate::config::WsUrl;

/// Resolves the host without blocking the shard: IP literals directly, names on a
/// short-lived thread.
async fn resolve(url: &WsUrl) -> io::Result<SocketAddr> {
    if let Ok(ip) = url.host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let target = (url.host.clone(), url.port);
    std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || {
            let r = std::net::ToSocketAddrs::to_socket_addrs(&target)
                .and_then(|mut a| a.next().ok_or_else(|| io::Error::other("no address")));
            let _ = tx.send(r);
        })?;
    rx.await
        .map_err(|_| io::Error::other("resolver thread died"))?
}

/// Connects and upgrades. Returns the stream and any bytes read past the handshake.
///
/// # Errors
/// Connect failures and handshake refusals.
pub async fn connect(url: &WsUrl) -> io::Result<(TcpStream, Vec<u8>)> {
    let addr = resolve(url).await?;
    let mut stream = TcpStream::connect_addr(addr).await?;
    stream.set_nodelay(true)?;
    let key = tungstenite::handshake::client::generate_key();
    let req = handshake::client_request(&url.host, url.port, &url.path, &key);
    let (res, _) = stream.write_all(req).await;
    res?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let len = buf.len();
        if buf.capacity() - len < 256 {
            buf.reserve(1024);
        }
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if res? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend closed during the handshake",
            ));
        }
        match handshake::parse_client_response(&buf, &key) {
            Ok(Some(n)) => return Ok((stream, buf.split_off(n))),
            Ok(None) => continue,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}
