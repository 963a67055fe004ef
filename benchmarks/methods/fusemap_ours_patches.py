"""This project's FuseMap with seed cells drawn as spatial patches (``patch_size=64``, set in the
registry): the same worker as ``fusemap_ours``, kept as its own method so the two seed schemes are
scored side by side (the question is whether patches cost embedding quality)."""

from .fusemap_ours import main

if __name__ == "__main__":
    main()
