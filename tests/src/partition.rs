//! A TCP path that can be cut: what one region's network sees of another's server.
//!
//! A region points its own SSM copy of the writer endpoint at [`Path::port`];
//! while the path is whole it forwards both ways to the server. Cut, nothing
//! passes either way on open connections (what was read is held, as TCP holds it
//! through a partition and delivers it if the connection survives) and new
//! connections are accepted but never reach the server: the region sees the
//! writer time out, not refuse. The other regions, which connect to the server
//! directly, see nothing at all. That is a partition of one region from one
//! server, without touching the server.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub struct Path {
    port: u16,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Path {
    /// A whole path to `127.0.0.1:upstream_port`, listening on a free local port.
    pub async fn open(upstream_port: u16) -> std::io::Result<Path> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropped with the task: every connection ends with the path.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(connect(client, upstream, watching.clone()));
            }
        });
        Ok(Path { port, cut, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Nothing passes from now on, either way.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Everything passes again, what was held first.
    pub fn heal(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    // A connection opened while cut hangs until the path heals (or the client gives up).
    if held(&mut cut).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (from_client, to_client) = client.into_split();
    let (from_server, to_server) = server.into_split();
    tokio::join!(
        pipe(from_client, to_server, cut.clone()),
        pipe(from_server, to_client, cut),
    );
}

/// Waits while the path is cut; an error when the path is gone.
async fn held(cut: &mut watch::Receiver<bool>) -> Result<(), watch::error::RecvError> {
    while *cut.borrow_and_update() {
        cut.changed().await?;
    }
    Ok(())
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if held(&mut cut).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    async fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(s: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
        s.write_all(text).await.ok()?;
        let mut buf = vec![0u8; text.len()];
        timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn a_cut_path_passes_nothing_either_way_and_delivers_it_when_healed() {
        let path = Path::open(echo_server().await).await.unwrap();
        let mut open = TcpStream::connect(("127.0.0.1", path.port()))
            .await
            .unwrap();
        assert_eq!(
            round_trip(&mut open, b"whole").await.as_deref(),
            Some(&b"whole"[..])
        );

        path.cut();
        assert_eq!(
            round_trip(&mut open, b"held!").await,
            None,
            "an open connection passes nothing"
        );
        let mut new = TcpStream::connect(("127.0.0.1", path.port()))
            .await
            .unwrap();
        assert_eq!(
            round_trip(&mut new, b"new").await,
            None,
            "a new one is accepted but hangs"
        );

        path.heal();
        let mut buf = [0u8; 5];
        timeout(Duration::from_secs(2), open.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"held!", "what was held arrives once healed");
        let mut buf = [0u8; 3];
        timeout(Duration::from_secs(2), new.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"new");
    }
}
