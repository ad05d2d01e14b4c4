"""Customers as resources (issue 14): the sensor that reads them and the onboarding actuators.

`CustomersActuator` (provider ``access``) observes ``customer://ID`` from the
``customers`` table and grants dashboard access; `StripeBilling` (``stripe``)
creates Stripe customers through the official library; `CustomerMailer`
(``email``) sends the welcome email over SMTP. Each writes what it did back to
the customer's row through `CustomerTable`, which is how the next tick knows.
"""
