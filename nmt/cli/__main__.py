"""`python -m nmt.cli COMMAND ...`: the `nmt` command, where its entry point is not installed
(e.g. for `torch.distributed.run -m nmt.cli train ...`)."""

from nmt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
