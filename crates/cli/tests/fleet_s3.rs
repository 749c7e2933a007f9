//! The fleet's blobs on an S3-compatible store (#21), as real processes:
//! moto's S3 server on loopback with a fresh bucket, `outpost fleet serve
//! --blobs s3://…`, a real SmolLM2 tier published through the fleet (the
//! upload lands in the bucket, hashed on the way), and `outpost agent once`
//! installing it from a pre-signed URL: the fleet answers the download
//! with a 307 and no bytes, the bucket serves the ranges. An upload whose
//! bytes do not match its digest is refused and leaves nothing behind.

mod common;
#[path = "agent_support/fixture.rs"]
mod fixture;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fleet::{free_port, Fleet};
use fixture::*;

const BUCKET: &str = "outpost-test";

/// moto's S3 server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Moto {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (scripts/ensure-s3.sh installs it)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "moto's S3 server did not start (scripts/ensure-s3.sh installs it)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Moto { child, url }
}

/// The keys under `prefix` in the bucket (moto answers unsigned reads).
fn keys(s3: &Moto, prefix: &str) -> Vec<String> {
    let xml = ureq::get(&format!("{}/{BUCKET}?list-type=2&prefix={prefix}", s3.url))
        .call()
        .expect("list the bucket")
        .into_string()
        .expect("xml");
    xml.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

#[test]
fn blobs_on_s3_are_uploaded_through_the_fleet_and_downloaded_from_presigned_urls() {
    let s3 = moto();
    ureq::put(&format!("{}/{BUCKET}", s3.url))
        .call()
        .expect("create the bucket");
    // The usual variables, inherited by the fleet process.
    for (k, v) in [
        ("AWS_ENDPOINT_URL", s3.url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        std::env::set_var(k, v);
    }
    let root = temp("s3");
    let data = root.0.join("fleet");
    let blobs = format!("s3://{BUCKET}/fleet");
    let fleet = Fleet::start(&data, free_port(), &["--blobs", &blobs]);
    let (q4, t4) = tier("q4_0");
    let d4 = digest_of(&q4);
    fleet.publish(&release(&root.0, "1.0.0", &q4, &t4));
    fleet.release_to_stable("1.0.0");
    let hex = d4.trim_start_matches("sha256:");
    assert_eq!(
        keys(&s3, "fleet/blobs/"),
        vec![format!("fleet/blobs/sha256/{hex}")],
        "the blob is in the bucket under its digest"
    );
    assert!(
        !data.join("store").join("blobs").exists()
            || std::fs::read_dir(data.join("store").join("blobs"))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
        "no blob on the fleet's disk"
    );

    // The device agent installs it; the canary runs on the real model.
    let store = root.0.join("device");
    let o = run(agent(&fleet, &store, &[], &[]));
    let out = text(&o);
    assert!(
        o.status.success() && out.contains("installed 1.0.0"),
        "{out}"
    );
    assert_eq!(active(&store), Some(d4.clone()));

    // The fleet sends the download elsewhere, with no bytes; the URL works
    // without the fleet's token and serves ranges.
    let admin = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let resp = agent
        .get(&format!("{}/v1/artifacts/{d4}", fleet.url))
        .set("authorization", &format!("Bearer {}", admin.trim()))
        .call()
        .expect("artifact");
    assert_eq!(resp.status(), 307);
    let location = resp.header("location").expect("Location").to_string();
    assert!(
        location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=900"),
        "a pre-signed URL valid 15 minutes: {location}"
    );
    assert!(
        resp.into_string().expect("body").is_empty(),
        "no bytes from the fleet"
    );
    let part = ureq::get(&location)
        .set("range", "bytes=1000-1999")
        .call()
        .expect("a range from the bucket");
    assert_eq!(part.status(), 206);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut part.into_reader(), &mut got).expect("read");
    let want = std::fs::read(&q4).expect("tier");
    assert_eq!(got, want[1000..2000].to_vec(), "the range's bytes");

    // A body that is not what its digest says is refused; no object stays.
    let claimed = outpost_protocol::Digest::sha256(b"the real bytes");
    let err = ureq::put(&format!("{}/admin/v1/blobs/{claimed}", fleet.url))
        .set("authorization", &format!("Bearer {}", admin.trim()))
        .send_bytes(b"other bytes")
        .expect_err("a mismatching upload is refused");
    match err {
        ureq::Error::Status(400, r) => {
            let body = r.into_string().unwrap_or_default();
            assert!(body.contains("nothing was kept"), "{body}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert!(
        keys(&s3, "fleet/uploads/").is_empty(),
        "no temporary object left"
    );
    assert_eq!(keys(&s3, "fleet/blobs/").len(), 1);
}
