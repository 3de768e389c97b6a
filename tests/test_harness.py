"""The harness itself: offline variables are set and the socket guard bites."""

import os
import socket

import pytest


def test_offline_environment_is_set_before_tests_run():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert "trex-test-hf-" in os.environ["HF_HOME"]


def test_socket_guard_refuses_a_non_loopback_connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="only loopback"):
            s.connect(("10.255.255.1", 80))
    finally:
        s.close()


def test_socket_guard_allows_loopback():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()
