"""Local-only code (embedded AWS, seeding, the demo, real Postfix/HAProxy helpers). Never imported by a handler."""
