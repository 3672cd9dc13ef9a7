"""The simulated internet: a private DNSSEC-signed root, TLDs and mail domains
served by NSD, resolved by a validating Unbound, and STARTTLS mail hosts on
127.0.0.0/8, built deterministically from a scenario catalogue."""
