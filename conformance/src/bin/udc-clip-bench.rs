//! `udc-clip-bench [--copies 200] [--windows]`: clipboard latency between two agents through the
//! host at `UDC_BASE_URL`. Two Xvfb displays, `udc-agent clipboard` on each (`UDC_AGENT_BIN`);
//! this program copies text on display A (owning the selection, as an application would) and
//! times until agent B has set display B's clipboard (XFixes reports the new owner there).
//! `--windows`: B is the Windows agent under Wine (`UDC_WINDOWS_AGENT_BIN`) on Wine's display
//! (`DISPLAY`, hosts.sh's start_wine), which offers the Windows clipboard as display B's.
//!
//! Prints figures; asserts nothing but that every copy arrived.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use udc_agent::clipboard::{change_signals, Content, Local};
use udc_conformance::desktop::{clipboard_agent, Display, DisplayAgent};
use udc_conformance::{ms, percentile, Account};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut copies = 200usize;
    let mut windows = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--copies" => copies = args.next().context("--copies N")?.parse()?,
            "--windows" => windows = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let account = Account::create().await;
    let (da, db) = if windows {
        (Display::start(), Display::given())
    } else {
        (Display::start(), Display::start())
    };
    let a = clipboard_agent(&account, "Bench A", &da);
    let b = if windows {
        DisplayAgent::login_windows(&account, "Bench B").spawn(&db, &["clipboard"], "clipboard")
    } else {
        clipboard_agent(&account, "Bench B", &db)
    };

    // This process is "an application on A": arboard takes DISPLAY when it opens.
    std::env::set_var("DISPLAY", da.name());
    let app = Local::open()?;
    let mut arrived = change_signals(Some(db.name()));
    let mut samples = Vec::with_capacity(copies);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..copies {
        while arrived.try_recv().is_ok() {}
        let text = format!("bench {run} copy {i}");
        let started = Instant::now();
        app.write(&Content::Text(text))?;
        tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .with_context(|| format!("copy {i} never reached display B"))?;
        samples.push(started.elapsed());
        // Both agents have said what they did before the next copy starts.
        a.expect("sent");
        b.expect("applied");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = format!("bench {run} copy {}", copies - 1);
    if db.paste("UTF8_STRING").as_deref() != Some(last.as_bytes()) {
        bail!("display B does not hold the last copy");
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "clipboard A->B{} on {}: {copies} copies  p50 {:.2} ms  p99 {:.2} ms  mean {:.2} ms  max {:.2} ms   (target p50 <= 25, p99 <= 100)",
        if windows {
            " (B: the Windows agent under Wine)"
        } else {
            ""
        },
        udc_conformance::base_url(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
        ms(mean),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}
