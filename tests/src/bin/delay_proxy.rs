//! `delay-proxy`: the network distance between two regions of the local world.
//!
//! A TCP proxy between a standby and its primary that holds every byte coming
//! *from* the primary (the WAL stream) for the current delay before passing it
//! on, in order; bytes towards the primary pass at once. The delay is read from
//! a file (milliseconds) every 100 ms, so tests can change it while it runs.
//! Killing the proxy drops what it holds: a region cut off from the network
//! loses the WAL still in flight, as a real one would.
//!
//! Usage: `delay-proxy <listen-port> <target-port> <delay-file>` (loopback only).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn usage() -> ! {
    eprintln!("usage: delay-proxy <listen-port> <target-port> <delay-file>");
    std::process::exit(2)
}

async fn watch_delay(file: PathBuf, delay: Arc<AtomicU64>) {
    loop {
        if let Ok(text) = tokio::fs::read_to_string(&file).await {
            if let Ok(ms) = text.trim().parse::<u64>() {
                delay.store(ms, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Copies `from` → `to`, each chunk held until `received + delay` (never
/// overtaking an earlier chunk).
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = Instant::now();
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = (Instant::now()
                        + Duration::from_millis(delay.load(Ordering::Relaxed)))
                    .max(last_due);
                    last_due = due;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    while let Some(item) = rx.recv().await {
        pending.push_back(item);
        while let Some((due, bytes)) = pending.pop_front() {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                reader.abort();
                return;
            }
            while let Ok(next) = rx.try_recv() {
                pending.push_back(next);
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn plain_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        usage();
    }
    let listen: u16 = args[1].parse().unwrap_or_else(|_| usage());
    let target: u16 = args[2].parse().unwrap_or_else(|_| usage());
    let delay = Arc::new(AtomicU64::new(0));
    tokio::spawn(watch_delay(PathBuf::from(&args[3]), delay.clone()));
    let listener = match TcpListener::bind(("127.0.0.1", listen)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("delay-proxy: cannot listen on 127.0.0.1:{listen}: {e}");
            std::process::exit(1)
        }
    };
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let delay = delay.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (up_read, up_write) = upstream.into_split();
            tokio::join!(
                plain_copy(client_read, up_write),
                delayed_copy(up_read, client_write, delay)
            );
        });
    }
}
