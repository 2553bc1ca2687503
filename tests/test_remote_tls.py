"""Remote endpoints over real TLS: a test CA (trustme) signs the fake server's certificate.

Home servers often use a certificate from their own CA.  Hearth trusts what the system
trusts (and ``SSL_CERT_FILE``, as other tools do); an unknown CA is a plain message that
names the certificate, and Stop still closes the connection under TLS."""

from __future__ import annotations

import ssl

import pytest
import trustme
from fake_openai_server import FakeOpenAI

from app.engine import protocol as p
from app.engine.remote import RemoteBackend, RemoteError

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(ctx)
    return ctx


def test_a_certificate_from_an_unknown_ca_is_a_plain_tls_message(ca, monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with FakeOpenAI(tls=server_context(ca)) as fake:
        assert fake.url.startswith("https://")
        with pytest.raises(RemoteError) as info:
            RemoteBackend(fake.url).probe()
        text = str(info.value)
        assert "secure connection to 127.0.0.1" in text and "certificate" in text
        assert "Traceback" not in text


def test_a_certificate_for_another_host_is_refused(ca, tmp_path, monkeypatch) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with FakeOpenAI(tls=server_context(ca, host="home.example")) as fake:
        with pytest.raises(RemoteError, match="secure connection"):
            RemoteBackend(fake.url).probe()


def test_a_trusted_ca_streams_and_stop_closes_the_tls_connection(ca, tmp_path, monkeypatch) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # as an admin would point tools at it
    with FakeOpenAI(tls=server_context(ca)) as fake:
        backend = RemoteBackend(fake.url)
        assert [m.id for m in backend.probe().models] == ["fake-model"]
        backend.load(p.Load("fake-model"))
        events = [e for e in backend.chat(p.Chat(MESSAGES, {"max_tokens": 16}), tick=0.02) if e is not None]
        assert "".join(e.text for e in events if isinstance(e, p.Delta)) == "Hello, world!"
        assert isinstance(events[-1], p.Done) and events[-1].reason == "stop"

        fake.mode = "slow"  # a piece every 50 ms until the client leaves
        reasons = []
        for event in backend.chat(p.Chat(MESSAGES, {"max_tokens": 8}), tick=0.02):
            if isinstance(event, p.Delta):
                backend.cancel()
            if isinstance(event, p.Done):
                reasons.append(event.reason)
        assert reasons == ["cancelled"]
        assert fake.disconnected.wait(5)  # the server's next write failed: the socket was shut
