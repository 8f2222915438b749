/*
 * tlsutil.h - the few mbedTLS helpers the gateway, panelgatectl and
 * libpanelagent must do identically: the key identity panelgate pins, and
 * the socket side of a BIO over a non-blocking socket.  Internal; linked
 * into each as the static pa_tlsutil.
 */
#ifndef PANELPROTO_TLSUTIL_H
#define PANELPROTO_TLSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#define PA_SPKI_SHA256_LEN 32

/* SHA-256 of |pk|'s DER SubjectPublicKeyInfo: what the registry pins for an
 * agent and what an agent may pin for the gateway.  Any key mbedTLS can
 * write (RSA up to 16384 bits, EC).  0, or -1 when the key cannot be
 * encoded. */
int pa_spki_sha256(const mbedtls_pk_context *pk, uint8_t out[PA_SPKI_SHA256_LEN]);

/* send(MSG_NOSIGNAL: never SIGPIPE) / recv on a non-blocking socket, with
 * errno mapped to what mbedTLS expects of a BIO: the byte count (0 from
 * recv = end of stream), MBEDTLS_ERR_SSL_WANT_WRITE / _WANT_READ,
 * MBEDTLS_ERR_NET_CONN_RESET, or MBEDTLS_ERR_NET_SEND_FAILED /
 * _RECV_FAILED. */
int pa_sock_send(int fd, const unsigned char *buf, size_t len);
int pa_sock_recv(int fd, unsigned char *buf, size_t len);

#endif /* PANELPROTO_TLSUTIL_H */
