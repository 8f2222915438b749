/*
 * tlsutil.c - see tlsutil.h.
 */
#include <panelproto/tlsutil.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>

int pa_spki_sha256(const mbedtls_pk_context *pk, uint8_t out[PA_SPKI_SHA256_LEN])
{
    /* An RSA-16384 SubjectPublicKeyInfo is about 2.1 KB. */
    unsigned char der[4096];
    /* mbedtls_pk_write_pubkey_der writes at the END of der */
    int n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)pk, der, sizeof der);
    if (n <= 0)
        return -1;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    int ret = mbedtls_sha256(der + sizeof der - (size_t)n, (size_t)n, out, 0);
#else
    int ret = mbedtls_sha256_ret(der + sizeof der - (size_t)n, (size_t)n, out, 0);
#endif
    return ret == 0 ? 0 : -1;
}

int pa_sock_send(int fd, const unsigned char *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (errno == EPIPE || errno == ECONNRESET)
        return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

int pa_sock_recv(int fd, unsigned char *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, 0);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (errno == ECONNRESET)
        return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}
