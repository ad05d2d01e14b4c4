"""The customer emails' headers, rendered: the Message-ID's domain is the sender's."""

from __future__ import annotations

from email.headerregistry import Address

from jarvis.actuators.customers.mailer import Letterhead, render
from jarvis.actuators.customers.table import Contact


def test_a_customer_email_has_one_message_id_on_the_domain_of_a_named_sender() -> None:
    """``Acme Billing <billing@acme.example>`` gives ``<welcome.…@acme.example>``, every render."""
    head = Letterhead(
        sender="Acme Billing <billing@acme.example>",
        product="Acme",
        dashboard_url="https://acme.example/dashboard",
        unsubscribe_url="https://acme.example/unsubscribe?c={customer}",
    )
    contact = Contact(
        email="c1@customers.test", name="Ann", stripe_customer_id=None, welcomed=False
    )
    message = render("welcome", "c1", contact, head)

    message_id = str(message["Message-ID"])
    assert message_id.startswith("<welcome.")
    assert message_id.endswith("@acme.example>")
    assert render("welcome", "c1", contact, head)["Message-ID"] == message_id
    assert message["From"].addresses == (Address("Acme Billing", addr_spec="billing@acme.example"),)
