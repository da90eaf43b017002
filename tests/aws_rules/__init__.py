"""Service rules no local tool checks, tested against the synthesized templates
(docs/platform-facts "Service rules")."""
