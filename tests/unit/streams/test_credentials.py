"""Kafka security settings become the right Faust credentials (the worker) and aiokafka options."""

from __future__ import annotations

import ssl

import faust
import pytest

from leadscore.infra.kafka.client import client_options
from leadscore.settings import Settings
from leadscore.streams.app import broker_credentials


def test_plaintext_has_no_credentials() -> None:
    assert broker_credentials(Settings()) is None
    assert client_options(Settings())["security_protocol"] == "PLAINTEXT"


def test_ssl_verifies_with_the_system_trust_store() -> None:
    credentials = broker_credentials(Settings(kafka_security_protocol="SSL"))
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("protocol, tls", [("SASL_SSL", True), ("SASL_PLAINTEXT", False)])
def test_sasl_carries_user_mechanism_and_tls(protocol: str, tls: bool) -> None:
    settings = Settings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="secret",
    )
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("svc", "secret")
    assert str(credentials.mechanism.value) == "SCRAM-SHA-512"
    assert (credentials.ssl_context is not None) is tls
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["security_protocol"] == protocol


def test_sasl_without_a_mechanism_means_plain_for_every_client() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p"
    )
    assert str(broker_credentials(settings).mechanism.value) == "PLAIN"
