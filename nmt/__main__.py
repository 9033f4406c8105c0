"""`python -m nmt COMMAND ...`: the `nmt` command, without its installed entry point."""

from nmt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
