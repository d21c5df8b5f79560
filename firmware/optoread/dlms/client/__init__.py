"""The DLMS client session: link, association, services, release."""
