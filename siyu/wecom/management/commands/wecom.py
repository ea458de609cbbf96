"""``siyu wecom``: debug callback crypto, replay the inbox, reconcile with WeCom.

siyu wecom decrypt --token T --aes-key K --receive-id R --msg-signature S --timestamp TS
                   --nonce N (--echostr E | --xml-file F)
siyu wecom encrypt --token T --aes-key K --receive-id R [--timestamp TS] [--nonce N]
                   (--text TEXT | --xml-file F) [--json]
siyu wecom replay --tenant SLUG [--from-id N] [--to-id N] [--since ISO] [--until ISO]
siyu wecom reconcile --tenant SLUG

decrypt prints the plaintext exactly, plus one newline. Exit status 1 means the message does not
verify or decrypt with these settings; 2 means a bad invocation (including an invalid
EncodingAESKey) or an unreadable file.
"""

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.wecom import admin_commands
from siyu.wecom.crypto import AesKeyError, CryptoError, MsgCrypt, parse_xml

EXIT_REJECTED = 1
EXIT_USAGE = 2  # argparse's own status for bad arguments


def _crypto_args(parser: CommandParser) -> None:
    parser.add_argument("--token", required=True, help="the callback Token")
    parser.add_argument("--aes-key", required=True, help="the 43-character EncodingAESKey")
    parser.add_argument(
        "--receive-id", required=True, help="corp id (suite id for third-party apps, or '')"
    )


def _read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc}", returncode=EXIT_USAGE) from exc


def _read_text(path: str) -> str:
    try:
        return _read_bytes(path).decode()
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8: {exc}", returncode=EXIT_USAGE) from exc


class Command(BaseCommand):
    help = "WeCom gateway tools: crypto debugging, inbox replay, reconciliation."
    requires_system_checks: list[str] = []  # crypto debugging needs no database

    def add_arguments(self, parser: CommandParser) -> None:
        # Django's CommandParser turns argparse errors into CommandError under call_command;
        # subparsers need the same class and flag to behave alike.
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        from_cli = getattr(parser, "called_from_command_line", None)

        decrypt = sub.add_parser(
            "decrypt", help="verify and decrypt a callback", called_from_command_line=from_cli
        )
        _crypto_args(decrypt)
        decrypt.add_argument("--msg-signature", required=True)
        decrypt.add_argument("--timestamp", required=True)
        decrypt.add_argument("--nonce", required=True)
        source = decrypt.add_mutually_exclusive_group(required=True)
        source.add_argument("--echostr", help="URL verification: the (URL-decoded) echostr")
        source.add_argument(
            "--xml-file", help="event POST: the request body (XML or JSON); - reads stdin"
        )

        encrypt = sub.add_parser(
            "encrypt",
            help="encrypt a message as WeCom would POST it",
            called_from_command_line=from_cli,
        )
        _crypto_args(encrypt)
        encrypt.add_argument("--timestamp", help="default: now")
        encrypt.add_argument("--nonce", help="default: 10 random digits")
        text = encrypt.add_mutually_exclusive_group(required=True)
        text.add_argument("--text", help="the plaintext message")
        text.add_argument("--xml-file", help="a file holding the plaintext verbatim; - for stdin")
        encrypt.add_argument(
            "--json",
            action="store_true",
            help="print one JSON object: msg_signature, timestamp, nonce, encrypt, body",
        )

        admin_commands.add_subcommands(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "decrypt":
                self._decrypt(options)
            elif action == "encrypt":
                self._encrypt(options)
            elif not admin_commands.run(action, options, self.stdout):
                raise CommandError(f"unknown action {action}", returncode=EXIT_USAGE)
        except AesKeyError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from exc
        except CryptoError as exc:
            raise CommandError(str(exc), returncode=EXIT_REJECTED) from exc

    def _decrypt(self, options: dict[str, Any]) -> None:
        crypt = MsgCrypt(options["token"], options["aes_key"], options["receive_id"])
        signature, timestamp, nonce = (
            options["msg_signature"],
            options["timestamp"],
            options["nonce"],
        )
        if options["echostr"] is not None:
            plaintext = crypt.verify_url(signature, timestamp, nonce, options["echostr"])
        else:
            body = _read_bytes(options["xml_file"])
            plaintext = crypt.decrypt_message(signature, timestamp, nonce, body)
        # ending="" so a plaintext that itself ends in a newline still gets exactly one more.
        self.stdout.write(plaintext + "\n", ending="")

    def _encrypt(self, options: dict[str, Any]) -> None:
        crypt = MsgCrypt(options["token"], options["aes_key"], options["receive_id"])
        if options["text"] is not None:
            plaintext = options["text"]
        else:
            plaintext = _read_text(options["xml_file"])
        timestamp = options["timestamp"] or str(int(time.time()))
        nonce = options["nonce"] or f"{secrets.randbelow(10**10):010d}"
        body, signature = crypt.encrypt_message(plaintext, timestamp=timestamp, nonce=nonce)
        if options["json"]:
            payload = {
                "msg_signature": signature,
                "timestamp": timestamp,
                "nonce": nonce,
                "encrypt": parse_xml(body)["Encrypt"],
                "body": body,
            }
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
        else:
            query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
            self.stdout.write(urlencode(query))
            self.stdout.write(body)
