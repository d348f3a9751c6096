"""The redis tier against a real redis-server on a free loopback port."""

from __future__ import annotations

import pytest
import redis
import torch

from _tiers import make_artifact, redis_server_or_skip
from kvbench.codecs import CodecError, get_codec
from kvbench.config import TierConfig
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


def open_redis(url, chunk_mib=1):
    return open_tier(TierConfig(name="redis", url=url, chunk_mib=chunk_mib), "", CODEC, CPU)


def test_round_trip_in_chunks_is_bitwise(server, client):
    art = make_artifact(tokens=40_000)  # 2 x 2 x 40000 x 16 x 2 B x 2 = ~10 MiB: 10 chunks of 1 MiB
    with open_redis(server.url) as tier:
        tier.put(CODEC.encode(art))
        assert tier.count >= 10 and client.dbsize() == tier.count + 1  # chunks + manifest
        read = tier.get()
        assert read.kv.equals(art) and read.fetch_bytes == tier.stored_bytes()
        tier.put(CODEC.encode(make_artifact(tokens=10)))  # a replacement leaves no old chunks
        assert client.dbsize() == tier.count + 1
    assert client.dbsize() == 0  # closing deletes the object


def test_object_over_the_query_buffer_limit_is_refused_clearly(server, client):
    """A put is one MULTI, which Redis >= 7.4 and Valkey count against client-query-buffer-limit."""
    client.config_set("client-query-buffer-limit", 1 << 20)
    try:
        with open_redis(server.url) as tier:
            with pytest.raises(TierError, match="client-query-buffer-limit"):
                tier.put(CODEC.encode(make_artifact(tokens=40_000)))
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
        tier.put(CODEC.encode(make_artifact()))
        assert tier.get().kv.equals(make_artifact())
        assert tier.info()["link_gbps"] > 0  # its own server: the loopback socket is the link
    assert proc.poll() is not None


def test_bit_flip_in_a_chunk_is_caught_before_use(server, client):
    with open_redis(server.url) as tier:
        tier.put(CODEC.encode(make_artifact(tokens=40_000)))
        key = f"{tier.data_key}:5"
        byte = client.getrange(key, 100, 100)
        client.setrange(key, 100, bytes([byte[0] ^ 0x04]))
        with pytest.raises(CodecError, match="checksum mismatch"):
            tier.get()


def test_truncated_chunk_is_caught_before_use(server, client):
    with open_redis(server.url) as tier:
        tier.put(CODEC.encode(make_artifact(tokens=40_000)))
        key = f"{tier.data_key}:{tier.count - 1}"
        client.set(key, client.get(key)[:-10])
        with pytest.raises(TierError, match="truncated"):
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
        with pytest.raises(TierUnavailableError, match="nothing stored"):
            tier.put(CODEC.encode(make_artifact(tokens=40_000)))
        monkeypatch.undo()
        assert client.info("stats")["total_net_input_bytes"] - received > 1 << 20  # chunks did arrive
        assert client.dbsize() == 0


def test_put_to_a_server_that_is_gone_fails_clearly():
    srv = LocalRedisServer(redis_server_or_skip())
    with open_redis(srv.url) as tier:
        srv.stop()
        with pytest.raises(TierUnavailableError, match="put to 127.0.0.1:.*failed, nothing stored"):
            tier.put(CODEC.encode(make_artifact()))


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(TierUnavailableError, match=r"cannot reach redis at 127\.0\.0\.1:\d+"):
        open_redis(f"redis://:secret@127.0.0.1:{free_port()}/0")


def test_password_comes_from_the_environment(monkeypatch):
    srv = LocalRedisServer(redis_server_or_skip())
    try:
        redis.Redis.from_url(srv.url).config_set("requirepass", "s3cret")
        monkeypatch.setenv("KVBENCH_REDIS_PASSWORD", "s3cret")
        with open_redis(srv.url) as tier:
            tier.put(CODEC.encode(make_artifact()))
            assert tier.get().kv.equals(make_artifact())
        monkeypatch.setenv("KVBENCH_REDIS_PASSWORD", "wrong")
        with pytest.raises(TierUnavailableError, match="cannot reach"):
            open_redis(srv.url)
    finally:
        srv.stop()


def test_missing_binary_says_how_to_get_one(monkeypatch):
    with pytest.raises(TierUnavailableError, match="tier.server_bin='/nonexistent/redis-server'"):
        open_tier(TierConfig(name="redis", server_bin="/nonexistent/redis-server"), "", CODEC, CPU)
