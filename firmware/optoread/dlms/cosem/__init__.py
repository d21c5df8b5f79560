"""COSEM interface classes (IEC 62056-6-2, Blue Book) as read by a client."""
