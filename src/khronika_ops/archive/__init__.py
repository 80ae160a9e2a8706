"""The offline installation archive: one file holding a release's module images, the collection, the
controller's Python wheels and collections, the release manifest and the docs, with a sha256 manifest
and an optional signature, for sites with no registry or internet access.

    layout  what is where in the archive, its manifest (archive.json) and the checksum list (SHA256SUMS)
    build   `khronika archive build`: pulls/saves the images, gathers the rest, writes the archive atomically
    verify  `khronika archive verify` and the install side: every checksum and the signature, naming the
            member that is wrong; safe extraction of the members the hosts need
    signing GPG (gpg / gpgv) and minisign
    cli     the `khronika archive` commands

playbooks/install-offline.yml (action khronika.platform.archive_unpack, filter khronika_archive_load)
installs or updates hosts from an archive; docs/offline.md walks through it.
"""
