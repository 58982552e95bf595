/*  =========================================================================
    erpsim_pdf - a minimal, valid one-page PDF 1.4 invoice document

    Hand-written objects (catalog, pages, page, content stream, Helvetica)
    with a correct cross-reference table: every xref entry holds the byte
    offset of its object, startxref the offset of the xref keyword.
    =========================================================================
*/
#ifndef ERPSIM_PDF_H_INCLUDED
#define ERPSIM_PDF_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Makes the invoice document showing number, order reference and the
//  amount (minor units, shown with the currency's decimals). Returns a
//  fresh buffer and sets *size. Caller owns return value and must free it.
char *
    erpsim_pdf_invoice (const char *number, const char *order_ref,
                        int64_t amount_minor, const char *currency,
                        size_t *size);

//  Formats amount_minor in major units of currency ("39.98", "1250" for
//  JPY) into text[size].
void
    erpsim_pdf_amount (int64_t amount_minor, const char *currency, char *text,
                       size_t size);

#endif
