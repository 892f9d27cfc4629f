//! `udc-slow-link LISTEN TO [--delay-ms 40] [--loss 0.02] [--kbps 2000] [--queue-ms 200]`: a UDP
//! forwarder that behaves as a poor network link, for benchmarks on a machine whose kernel has
//! no netem. Each client address that sends to LISTEN gets its own socket towards TO, and every
//! datagram either way is lost at random (`--loss`), held to a bit rate (`--kbps`: a datagram
//! waits until the link has carried the ones before it, and one that would wait longer than
//! `--queue-ms` is dropped, as a router's full queue drops it), then delayed (`--delay-ms` each
//! way: 40 ms makes a round trip of 80 ms).
//!
//! scripts/bench-link.sh puts it in front of the TURN relay, and the desk sends only through the
//! relay, so a remote session's media and feedback all cross it (twice, should the page too pick
//! a relayed path: double the loss and delay).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Clone, Copy)]
struct Shape {
    delay: Duration,
    loss: f64,
    bits_per_sec: f64,
    queue: Duration,
}

/// One direction of the link: when the link is free again, and where what passes is sent.
struct Direction {
    shape: Shape,
    free_at: Instant,
    out: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
}

impl Direction {
    /// A direction that sends on `socket` to `to` (or to the address it is connected to).
    fn new(shape: Shape, socket: Arc<UdpSocket>, to: Option<SocketAddr>) -> Direction {
        let (out, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        // Departures come in order: each is the link's free time plus one fixed delay.
        tokio::spawn(async move {
            while let Some((at, datagram)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                let _ = match to {
                    Some(to) => socket.send_to(&datagram, to).await,
                    None => socket.send(&datagram).await,
                };
            }
        });
        Direction {
            shape,
            free_at: Instant::now(),
            out,
        }
    }

    fn pass(&mut self, datagram: Vec<u8>) {
        let random = uuid::Uuid::new_v4().as_u128() as f64 / u128::MAX as f64;
        if random < self.shape.loss {
            return;
        }
        let now = Instant::now();
        let start = self.free_at.max(now);
        if start - now > self.shape.queue {
            return;
        }
        let on_the_wire =
            Duration::from_secs_f64(datagram.len() as f64 * 8.0 / self.shape.bits_per_sec);
        self.free_at = start + on_the_wire;
        let _ = self.out.send((self.free_at + self.shape.delay, datagram));
    }
}

fn millis(ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0).context("a duration of 0 ms or more")
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().context("LISTEN")?.parse()?;
    let to: SocketAddr = args.next().context("TO")?.parse()?;
    let mut shape = Shape {
        delay: Duration::from_millis(40),
        loss: 0.02,
        bits_per_sec: 2_000_000.0,
        queue: Duration::from_millis(200),
    };
    while let Some(a) = args.next() {
        let mut n = || -> Result<f64> { Ok(args.next().context("a number")?.parse()?) };
        match a.as_str() {
            "--delay-ms" => shape.delay = millis(n()?)?,
            "--loss" => shape.loss = n()?,
            "--kbps" => shape.bits_per_sec = n()? * 1000.0,
            "--queue-ms" => shape.queue = millis(n()?)?,
            other => bail!("unknown argument {other}"),
        }
    }
    if !(shape.bits_per_sec > 0.0 && (0.0..=1.0).contains(&shape.loss)) {
        bail!("--kbps must be above 0 and --loss from 0 to 1");
    }
    let front = Arc::new(UdpSocket::bind(listen).await?);
    let mut clients: HashMap<SocketAddr, Direction> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = front.recv_from(&mut buf).await?;
        let away = match clients.entry(from) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
                back.connect(to).await?;
                // What the far end answers goes back to this client through the link too.
                let mut towards_client = Direction::new(shape, Arc::clone(&front), Some(from));
                let reading = Arc::clone(&back);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        match reading.recv(&mut buf).await {
                            Ok(n) => towards_client.pass(buf[..n].to_vec()),
                            // The far end's port closed for a moment (an ICMP answer): go on.
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                            Err(_) => break,
                        }
                    }
                });
                new.insert(Direction::new(shape, back, None))
            }
        };
        away.pass(buf[..n].to_vec());
    }
}
