"""Certificates for the TLS tests, made on the spot with python3-cryptography:
a CA, and server certificates signed by it (valid, expired, for another name)
or by themselves."""
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, cert, key):
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return path + ".pem", path + ".key"


def make(folder):
    """{kind: (cert.pem, key.pem)} for ca, valid, expired, wrong_name, self_signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("lubeck test CA")).issuer_name(_name("lubeck test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": _write(str(folder / "ca"), ca, ca_key)}

    def server(kind, names, before, after, self_signed=False):
        key = ec.generate_private_key(ec.SECP256R1())
        issuer = _name(names[0]) if self_signed else ca.subject
        alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(before).not_valid_after(after)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(key if self_signed else ca_key, hashes.SHA256()))
        out[kind] = _write(str(folder / kind), cert, key)

    server("valid", ["localhost"], now - day, now + 30 * day)
    server("expired", ["localhost"], now - 30 * day, now - day)
    server("wrong_name", ["elsewhere.test"], now - day, now + 30 * day)
    server("self_signed", ["localhost"], now - day, now + 30 * day, self_signed=True)
    return out
