//! Rendered pages cached per tenant, on two instances of a service, each with
//! a local tier: when a tenant changes its theme, one call drops every page of
//! that tenant on both instances, and the other tenants' pages stay cached.
//! A template change drops every page at once, and a render that began
//! before an invalidation is answered but not cached.
//!
//! ```text
//! cargo run --example tenant_pages
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example tenant_pages
//! ```

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cacheable, TypedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "page", ttl = "10m", local(capacity = 10000, ttl = "1m"))]
struct Page {
    #[cache(key)]
    url: String,
    #[cache(tag)]
    tenant: String,
    html: String,
}

/// Stands in for the template engine, counting renders.
#[derive(Default)]
struct Renderer {
    renders: AtomicUsize,
}

impl Renderer {
    async fn render(&self, url: &str, delay: Duration) -> Page {
        self.renders.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        let tenant = url.split('/').next().unwrap_or_default().to_owned();
        let html = format!("<h1>{url}</h1>");
        let url = url.to_owned();
        Page { url, tenant, html }
    }

    fn count(&self) -> usize {
        self.renders.load(Ordering::SeqCst)
    }
}

const URLS: [&str; 4] = ["acme/home", "acme/pricing", "globex/home", "globex/about"];

/// Serves every page through `pages`, rendering the ones not cached.
async fn serve_all(pages: &TypedCache<String, Page>, renderer: &Arc<Renderer>) {
    for url in URLS {
        let renderer = Arc::clone(renderer);
        let render = async move || Some(renderer.render(url, Duration::ZERO).await);
        let page = pages.get_or_load(url, render).await;
        assert!(matches!(page, Ok(Some(_))), "{url}: {page:?}");
    }
}

/// Reads `url` on `pages` until it is no longer cached; returns how long that took.
async fn gone(pages: &TypedCache<String, Page>, url: &str) -> cache_core::Result<Duration> {
    let started = Instant::now();
    while pages.get(url).await?.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url} still cached"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let a = support::connect("pages-demo").await?;
    let b = support::another_instance(&a, "pages-demo").await?;
    let (pages_a, pages_b) = (a.typed::<Page>()?, b.typed::<Page>()?);
    let renderer = Arc::new(Renderer::default());

    serve_all(&pages_a, &renderer).await;
    serve_all(&pages_b, &renderer).await;
    println!(
        "first visits: {} renders for {} pages",
        renderer.count(),
        URLS.len()
    );
    assert_eq!(renderer.count(), URLS.len());

    // Acme changed its theme: every Acme page goes, on both instances.
    a.invalidate_tag(&cache_core::tag("tenant", "acme")).await?;
    let seen = gone(&pages_b, "acme/home").await?;
    println!("instance b stopped serving acme/home {seen:?} after the invalidation");
    let before = renderer.count();
    serve_all(&pages_b, &renderer).await;
    let rendered = renderer.count() - before;
    println!("after the theme change: {rendered} renders (the two Acme pages)");
    assert_eq!(rendered, 2);

    // The page template changed: every page goes, in one write.
    pages_a.invalidate_all().await?;
    gone(&pages_b, "globex/about").await?;
    let before = renderer.count();
    serve_all(&pages_b, &renderer).await;
    println!(
        "after the template change: {} renders",
        renderer.count() - before
    );
    assert_eq!(renderer.count() - before, URLS.len());

    // A render that began before an invalidation is answered, not cached.
    let slow = {
        let (pages, renderer) = (pages_a.clone(), Arc::clone(&renderer));
        tokio::spawn(async move {
            pages.delete("acme/home").await?;
            let render = async move || {
                Some(
                    renderer
                        .render("acme/home", Duration::from_millis(200))
                        .await,
                )
            };
            pages.get_or_load("acme/home", render).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.invalidate_tag(&cache_core::tag("tenant", "acme")).await?;
    let answered = slow
        .await
        .map_err(|err| cache_core::Error::config(err.to_string()))??;
    assert!(answered.is_some());
    assert_eq!(pages_a.get("acme/home").await?, None);
    println!(
        "a render that raced the invalidation was answered, not cached (unstored values: {})",
        a.stats().unstored_values
    );
    println!(
        "tag invalidations on instance a: {}",
        a.stats().tag_invalidations
    );
    Ok(())
}
