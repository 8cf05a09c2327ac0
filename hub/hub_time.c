/* Millisecond UTC timestamps and their ISO-8601 form. The calendar maths is
 * done by hand (proleptic Gregorian, days since the epoch) so results never
 * depend on TZ, locale or timegm(). */
#include "hub_time.h"

#include <stdbool.h>
#include <time.h>

#include "cn_err.h"
#include "cn_time.h"

#define MS_PER_DAY 86400000LL
/* 10000-01-01T00:00:00Z: the first instant that needs five year digits. */
#define MS_YEAR_10000 253402300800000LL

int64_t hub_time_now_ms(void *ctx)
{
    (void)ctx;
    return cn_time_wall_ms();
}

/* Days from 1970-01-01 to y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* Writes `v` (0 <= v < 10^n) as exactly n digits; returns the end. */
static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

int hub_time_format(int64_t ms, char out[static HUB_TIME_ISO_SIZE])
{
    out[0] = '\0';
    if (ms < 0 || ms >= MS_YEAR_10000)
        return CN_EINVAL;
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    /* Fixed-width fields written digit by digit: the ranges are known, so
     * nothing can be truncated. */
    char *p = out;
    p = put_digits(p, (int)y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (int)(rem / 3600000), 2);
    *p++ = ':';
    p = put_digits(p, (int)(rem / 60000 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (int)(rem / 1000 % 60), 2);
    *p++ = '.';
    p = put_digits(p, (int)(rem % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
    return 0;
}

/* Reads exactly `n` decimal digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char a, char b)
{
    if (**p != a && **p != b)
        return false;
    (*p)++;
    return true;
}

int hub_time_parse(const char *s, int64_t *ms)
{
    if (!s || !ms)
        return CN_EINVAL;
    const char *p = s;
    int y, mo, d, h, mi, sec, frac = 0;
    if (!digits(&p, 4, &y) || !expect(&p, '-', '-') || !digits(&p, 2, &mo) ||
        !expect(&p, '-', '-') || !digits(&p, 2, &d) || !expect(&p, 'T', 't') ||
        !digits(&p, 2, &h) || !expect(&p, ':', ':') || !digits(&p, 2, &mi) ||
        !expect(&p, ':', ':') || !digits(&p, 2, &sec))
        return CN_EINVAL;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return CN_EINVAL;
        for (; n < 3; n++)
            frac *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (!digits(&p, 2, &oh) || !expect(&p, ':', ':') || !digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return CN_EINVAL;
        offset_min = sign * (oh * 60 + om);
    } else {
        return CN_EINVAL;
    }
    if (*p != '\0')
        return CN_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return CN_EINVAL;
    int64_t t = days_from_civil(y, mo, d) * MS_PER_DAY +
                ((int64_t)h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60) * 1000 + frac;
    if (t < 0 || t >= MS_YEAR_10000)
        return CN_EINVAL;
    *ms = t;
    return 0;
}
