"""`python -m khronika_ops` is the `khronika` command (playbooks call it with ansible_playbook_python)."""

from khronika_ops.cli import main

main()
