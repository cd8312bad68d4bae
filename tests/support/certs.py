"""Signing identities for the token server: a private key and its self-signed certificate.

The certificate is what the registry trusts (`auth.token.rootcertbundle`); the key signs tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import jwt


@dataclass(frozen=True)
class SigningIdentity:
    key: jwt.SigningKey
    certificate: x509.Certificate

    @property
    def algorithm(self) -> str:
        return jwt.algorithm_for(self.key)

    @property
    def key_id(self) -> str:
        """libtrust key ID of the public key (what distribution 2.x matches a `kid` header against)."""
        return jwt.libtrust_key_id(self.key.public_key())

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def x5c(self) -> list[str]:
        """The certificate chain as a JWS `x5c` header value (standard base64 DER, leaf first)."""
        return [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")]

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.certificate_pem)
        return path


def new_identity(algorithm: str = "ES256", common_name: str = "mirror-test-token-issuer") -> SigningIdentity:
    """A fresh key (P-256 for ES256, RSA-2048 for RS256) and a self-signed certificate valid for a day."""
    key: jwt.SigningKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    certificate = self_signed_ca(key, common_name)
    return SigningIdentity(key=key, certificate=certificate)


def self_signed_ca(
    key: jwt.SigningKey,
    common_name: str,
    *,
    path_length: int | None = None,
    crl_sign: bool = False,
    subject_key_id: bool = False,
) -> x509.Certificate:
    """A self-signed CA certificate for ``key``, valid from five minutes ago for a day."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if subject_key_id:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    return builder.sign(key, hashes.SHA256())
