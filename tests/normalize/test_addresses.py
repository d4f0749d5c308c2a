"""`source.ip` holds only addresses: the shortcuts (dotted quad, no colon) agree with ipaddress."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from detector.normalize.base import ip

ADDRESS_LIKE = st.text(alphabet="0123456789.:af \u0663\u00b2", max_size=18)
#: what else a client address field holds: host names, with and without a zone or port
HOST_LIKE = st.text(alphabet="0123456789.:%-afgxz[]", max_size=24)


@given(st.one_of(ADDRESS_LIKE, HOST_LIKE, st.ip_addresses().map(str)))
@example("registry-7f9c5d-2xkq4")
@example("fe80::1%eth0")
@example("10.221.1.179")
@example("255.255.255.255")
@example("256.1.1.1")
@example("01.2.3.4")
@example("1.2.3")
@example("1.2.3.4.")
@example("\u0663.1.1.1")
def test_ip_is_the_text_ipaddress_accepts(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        expected = None
    else:
        expected = text
    assert ip(text) == expected
