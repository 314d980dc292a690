"""The administration API face (MailStore Server's protocol, seed 001): docs/admin-api.md."""
