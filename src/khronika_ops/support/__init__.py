"""The support bundle and the support request draft (docs/support.md).

request  the request the vendor's support process asks for (organisation, description, category,
         contact, attachments) as a model, its JSON schema, and the categories' meanings
redact   secrets (the inventory's own values, private keys, credentials in URLs, tokens, container
         environment values) and optional consistent pseudonyms for host names and addresses
bundle   one timestamped archive from what playbooks/support-bundle.yml collected: per-host files
         redacted, a human summary, request.json and its schema; the finished archive is scanned for
         every secret known before it is handed out
cli      `khronika support bundle`
"""
