#!/usr/bin/env python3
"""Makes this folder's .eml test messages (CC0-1.0, made here; see LICENSE.md).
Run from this folder: python3 gen.py (the JPEG is examples/products/dandelions.png,
which is a JPEG of the CC0 'seeding' photo)."""
from email.message import EmailMessage
from email.policy import SMTP


def pdf(text):
    """A one-page PDF with one line of text, offsets computed."""
    stream = b"BT /F1 12 Tf 72 720 Td (" + text.encode() + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += str(i).encode() + b" 0 obj\n" + o + b"\nendobj\n"
    x = len(out)
    out += b"xref\n0 " + str(len(objs) + 1).encode() + b"\n0000000000 65535 f \n"
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size " + str(len(objs) + 1).encode() + b" /Root 1 0 R >>\nstartxref\n" + str(x).encode() + b"\n%%EOF\n"
    return out


def message(subject, body):
    m = EmailMessage()
    m["From"] = "Ana Lima <ana@example.com>"
    m["To"] = "Legal <legal@example.org>"
    m["Date"] = "Mon, 07 Dec 2026 09:15:00 +0000"
    m["Subject"] = subject
    m.set_content(body)
    return m


jpeg = open("../../../examples/products/dandelions.png", "rb").read()
assert jpeg[:3] == b"\xff\xd8\xff"

m = message("Signed services agreement", "Hello,\n\nattached are the signed agreement and a photo of the site.\n\nAna\n")
m.add_attachment(pdf("This Services Agreement is made between Acme Ltd and Beta GmbH."), maintype="application", subtype="pdf", filename="agreement.pdf")
m.add_attachment(jpeg, maintype="image", subtype="jpeg", filename="site photo.jpg")
open("with_pdf_and_jpeg.eml", "wb").write(m.as_bytes(policy=SMTP))

inner = message("Fwd: price list", "The price list is attached.\n")
inner.add_attachment(pdf("Price list: consulting 120 EUR per hour."), maintype="application", subtype="pdf", filename="prices.pdf")
outer = message("Re: Fwd: price list", "See the message below.\n")
outer.add_attachment(inner)  # message/rfc822
open("nested_message.eml", "wb").write(outer.as_bytes(policy=SMTP))

# A request with a deadline, a Cc and a commitment, one PDF attached (for
# the correspondence digest: from, subject, an action item, a date).
m = message("Fee schedule for 2027", "Hello team,\n\nPlease review the attached fee schedule and send your comments by 15 December 2026. "
            "We will keep the 2026 rates until the end of January.\n\nThanks,\nAna\n")
m["Cc"] = "Finance <finance@example.org>"
m.add_attachment(pdf("Fee schedule 2027: consulting 130 EUR per hour."), maintype="application", subtype="pdf", filename="fees 2027.pdf")
m.set_boundary("==request-boundary==")
open("request_with_deadline.eml", "wb").write(m.as_bytes(policy=SMTP))

# A bomb of nested parts: 40 levels of multipart/mixed, 2 KB.
lines = ["From: x@example.com", "To: y@example.com", "Subject: nested parts", "MIME-Version: 1.0",
         'Content-Type: multipart/mixed; boundary="b0"', ""]
for i in range(40):
    lines += ["--b%d" % i, 'Content-Type: multipart/mixed; boundary="b%d"' % (i + 1), ""]
lines += ["--b40", "Content-Type: text/plain", "", "deep", "--b40--"]
for i in range(39, -1, -1):
    lines += ["--b%d--" % i]
open("bomb_nested_parts.eml", "w").write("\r\n".join(lines) + "\r\n")
