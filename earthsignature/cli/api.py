"""``earthsignature certs`` and ``serve``: the Database service's certificate exchange and server."""

from __future__ import annotations

from pathlib import Path

import click

from earthsignature.cli.common import config_option, database_url, overrides_argument, service_config
from earthsignature.core.layout import CertificateFolder


def _certs(config: str, overrides: tuple[str, ...]) -> CertificateFolder:
    return CertificateFolder(Path(service_config(config, overrides).api.certs_dir))


@click.group()
def certs() -> None:
    """Certificates for the API's mutual TLS: the CA, server, internal and pilot certificates."""


@certs.command("init")
@click.option("--server-name", "server_names", multiple=True, default=("127.0.0.1", "localhost"), show_default=True,
              help="host names / IP addresses the server certificate is valid for")
@config_option
@overrides_argument
def certs_init(server_names: tuple[str, ...], config: str, overrides: tuple[str, ...]) -> None:
    """Create the CA, the server certificate and the monitor's internal certificate (once)."""
    from earthsignature.service.api.auth import init_certificates

    folder = _certs(config, overrides)
    ca = init_certificates(folder, ("server", "monitor"), server_names)
    click.echo(f"CA {ca.cert_path}\nserver {folder.identity('server').cert}\n"
               f"internal client {folder.identity('monitor').cert}")


@certs.command("request")
@click.option("--name", required=True, help="the pilot's name (the certificate's common name)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
def certs_request(name: str, out: Path) -> None:
    """(Pilot side) make a private key and a certificate signing request; send only the .csr."""
    from earthsignature.service.api.auth import request_certificate

    key, csr = request_certificate(out, name)
    click.echo(f"key {key} (keep it)\nCSR {csr} (send it to the operator)")


@certs.command("issue")
@click.option("--csr", "csr_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--role", type=click.Choice(["pilot", "internal"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: beside the CSR")
@config_option
@overrides_argument
def certs_issue(csr_path: Path, role: str, out: Path | None, config: str, overrides: tuple[str, ...]) -> None:
    """(Operator side) sign a CSR with the project CA, for a role."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from earthsignature.service.api.auth import AuthError, CertificateAuthority, format_serial

    ca = CertificateAuthority(_certs(config, overrides).authority.path)
    try:
        certificate = ca.sign(x509.load_pem_x509_csr(csr_path.read_bytes()), role)
    except (AuthError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    out = out or csr_path.with_suffix(".crt")
    out.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    click.echo(f"{out} (serial {format_serial(certificate.serial_number)}); give it back with {ca.cert_path}")


@certs.command("revoke")
@click.argument("serial")
@config_option
@overrides_argument
def certs_revoke(serial: str, config: str, overrides: tuple[str, ...]) -> None:
    """Deny a certificate by serial number (decimal, or hexadecimal as `openssl x509 -serial` prints it:
    3A4F..., 3a:4f:..., 0x3a4f...); a running server rereads the list."""
    from earthsignature.service.api.auth import AuthError, CertificateAuthority, format_serial, parse_serial

    try:
        number = parse_serial(serial)
    except AuthError as error:
        raise click.ClickException(str(error)) from error
    CertificateAuthority(_certs(config, overrides).authority.path).revoke(number)
    click.echo(f"revoked {format_serial(number)} ({number})")


@certs.command("rotate-link-key")
@config_option
@overrides_argument
def certs_rotate_link_key(config: str, overrides: tuple[str, ...]) -> None:
    """A new key for signed map links; links signed with the key it replaces open until they expire (it stays
    valid until the next rotation). Running servers pick it up without a restart."""
    from earthsignature.service.api.signed_links import LinkKeys

    key = LinkKeys(_certs(config, overrides).link_keys).rotate()
    click.echo(f"new link-signing key {key.key_id}; the previous one stays valid until the next rotation")


@click.command()
@click.option("--insecure", is_flag=True, help="plain-text gRPC, every caller internal: local development only")
@config_option
@overrides_argument
def serve(insecure: bool, config: str, overrides: tuple[str, ...]) -> None:
    """Run the Database service: gRPC API (mutual TLS) and its HTTP gateway, until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from earthsignature.service.api.lifecycle import ServeError, preflight, serving

    cfg = service_config(config, overrides)
    try:
        preflight(cfg.api, insecure)  # fail before starting the database
        with serving(database_url(config, overrides), cfg.api, insecure) as running:
            http = running.http_address
            click.echo(f"gRPC on {cfg.api.address} ({'insecure' if insecure else 'mutual TLS'}, "
                       f"{cfg.api.processes} process(es))"
                       + (f", HTTP gateway on {http[0]}:{http[1]}" if http else ""), err=True)
            stopping = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
            stopping.wait()
    except ServeError as error:
        raise click.ClickException(str(error)) from error
    click.echo("stopped", err=True)
