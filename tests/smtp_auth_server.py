"""A real SMTP server that requires AUTH (PLAIN or LOGIN), for the tests of riverwatch's
SMTP credentials. aiosmtpd's command line has no authentication option, so this starts its
Controller directly. Messages go to the same Maildir as the other test servers.

Usage: /usr/bin/python3 smtp_auth_server.py PORT MAILDIR USER PASSWORD
"""
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    # handled=False: aiosmtpd sends the 235/535 reply itself.
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Mailbox(maildir),
    hostname="127.0.0.1",
    port=port,
    authenticator=authenticator,
    auth_required=True,
    # Loopback only, in tests: allow AUTH without TLS.
    auth_require_tls=False,
)
controller.start()
threading.Event().wait()
