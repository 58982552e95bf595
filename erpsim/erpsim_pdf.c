/*  =========================================================================
    erpsim_pdf - a minimal, valid one-page PDF 1.4 invoice document
    =========================================================================
*/
#include "erpsim_pdf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PDF_OBJECTS 5     //  Objects 1..5
#define PDF_TEXT_MAX 128  //  Longest text shown, bytes

typedef struct {
    char *data;    //  Document so far
    size_t size;   //  Bytes used
    size_t alloc;  //  Bytes allocated
} buffer_t;

static void
s_append (buffer_t *buffer, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int length = vsnprintf (NULL, 0, format, args);
    va_end (args);
    assert (length >= 0);
    if (buffer->size + (size_t) length + 1 > buffer->alloc) {
        buffer->alloc = (buffer->size + (size_t) length + 1) * 2;
        buffer->data = (char *) realloc (buffer->data, buffer->alloc);
        assert (buffer->data);
    }
    va_start (args, format);
    vsnprintf (buffer->data + buffer->size, (size_t) length + 1, format, args);
    va_end (args);
    buffer->size += (size_t) length;
}

//  Copies text into a PDF literal string body: escapes ( ) \ and keeps
//  printable ASCII only.
static void
s_literal (const char *text, char *target, size_t size)
{
    size_t used = 0;
    for (const char *c = text; *c && used + 3 < size; c++) {
        if (*c == '(' || *c == ')' || *c == '\\')
            target[used++] = '\\';
        target[used++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    }
    target[used] = '\0';
}

void
erpsim_pdf_amount (int64_t amount_minor,
                   const char *currency,
                   char *text,
                   size_t size)
{
    assert (currency);
    assert (text);
    //  ISO 4217 currencies without minor units (the common ones)
    const char *zero[] = {"JPY", "KRW", "ISK", "CLP", "VND", "XOF",
                          "XAF", "UGX", "PYG", "RWF", NULL};
    int decimals = 2;
    for (int index = 0; zero[index]; index++)
        if (strcmp (currency, zero[index]) == 0)
            decimals = 0;
    const char *sign = amount_minor < 0 ? "-" : "";
    unsigned long long magnitude =
        amount_minor < 0 ? 0ULL - (unsigned long long) amount_minor
                         : (unsigned long long) amount_minor;
    if (decimals == 0)
        snprintf (text, size, "%s%llu", sign, magnitude);
    else
        snprintf (text, size, "%s%llu.%02llu", sign, magnitude / 100,
                  magnitude % 100);
}

char *
erpsim_pdf_invoice (const char *number,
                    const char *order_ref,
                    int64_t amount_minor,
                    const char *currency,
                    size_t *size)
{
    assert (number);
    assert (order_ref);
    assert (currency);
    assert (size);
    char number_text[PDF_TEXT_MAX], order_text[PDF_TEXT_MAX];
    char currency_text[16], amount[64];
    s_literal (number, number_text, sizeof (number_text));
    s_literal (order_ref, order_text, sizeof (order_text));
    s_literal (currency, currency_text, sizeof (currency_text));
    erpsim_pdf_amount (amount_minor, currency, amount, sizeof (amount));

    buffer_t content = {NULL, 0, 0};
    s_append (&content,
              "BT /F1 20 Tf 72 770 Td (Invoice %s) Tj ET\n"
              "BT /F1 12 Tf 72 740 Td (Order: %s) Tj ET\n"
              "BT /F1 12 Tf 72 720 Td (Amount: %s %s) Tj ET\n",
              number_text, order_text, amount, currency_text);

    buffer_t pdf = {NULL, 0, 0};
    size_t offsets[PDF_OBJECTS + 1];
    //  The binary comment line tells tools the file holds binary data
    s_append (&pdf, "%%PDF-1.4\n%%\xe2\xe3\xcf\xd3\n");
    offsets[1] = pdf.size;
    s_append (&pdf, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    offsets[2] = pdf.size;
    s_append (&pdf,
              "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
    offsets[3] = pdf.size;
    s_append (&pdf, "3 0 obj\n<< /Type /Page /Parent 2 0 R "
                    "/MediaBox [0 0 595 842] /Contents 4 0 R "
                    "/Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n");
    offsets[4] = pdf.size;
    s_append (&pdf, "4 0 obj\n<< /Length %zu >>\nstream\n%sendstream\nendobj\n",
              content.size, content.data);
    offsets[5] = pdf.size;
    s_append (&pdf, "5 0 obj\n<< /Type /Font /Subtype /Type1 "
                    "/BaseFont /Helvetica >>\nendobj\n");
    size_t xref = pdf.size;
    //  Each entry is exactly 20 bytes: 10 digits, space, 5 digits, space,
    //  type, space, newline
    s_append (&pdf, "xref\n0 %d\n0000000000 65535 f \n", PDF_OBJECTS + 1);
    for (int object = 1; object <= PDF_OBJECTS; object++)
        s_append (&pdf, "%010zu 00000 n \n", offsets[object]);
    s_append (&pdf,
              "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%zu\n"
              "%%%%EOF\n",
              PDF_OBJECTS + 1, xref);
    free (content.data);
    *size = pdf.size;
    return pdf.data;
}
