"""Local-only code: embedded AWS, seeding, the demo, real Postfix/HAProxy. Never imported by a handler."""
