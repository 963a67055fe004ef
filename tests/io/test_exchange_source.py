"""The R side of the exchange has one source: python/fusemap/io/exchange.R is rpkg/R/parts.R."""

import importlib.util

from conftest import ROOT


def test_exchange_r_is_generated_from_the_r_package():
    spec = importlib.util.spec_from_file_location("generate_exchange_r", ROOT / "scripts" / "generate_exchange_r.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from fusemap.io.r_exchange import EXCHANGE_R

    assert EXCHANGE_R.read_text() == gen.generated(), (
        "python/fusemap/io/exchange.R differs from rpkg/R/parts.R: run scripts/generate_exchange_r.py")
    assert "_R_CODE" not in (ROOT / "python" / "fusemap" / "io" / "r_exchange.py").read_text()
