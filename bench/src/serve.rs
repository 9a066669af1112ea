//! Serving a benchmark endpoint the way the bench scripts expect: bind,
//! print `listening on http://ADDR` (port 0 picks one; the scripts read it),
//! serve until SIGTERM or Ctrl-C. Shared by the baseline binaries.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;

/// Serves `app` on `addr` until SIGTERM (what the scripts send) or Ctrl-C.
pub(crate) async fn until_terminated(addr: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    // Installed before the address is printed: a script may send SIGTERM as
    // soon as it has read it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{bound}")?;
    stdout.flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
