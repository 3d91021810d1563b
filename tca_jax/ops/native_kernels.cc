// Native CPU kernels for tca-jax, called through jax.ffi (tca_jax/ops/native.py builds and
// registers this file; see its docstring for why these are not left to XLA).
//
// BmmDiag: out[b] = A[b] @ M[b] + diag-scatter(d[b], u[b]), per batch entry b (all leading dims
// flattened), row-major:
//   A [..., n, k], M [..., k, p], d [..., n], u [..., q] with p == q * n (or q == 0: no add),
//   out[b, j, i * n + j] += d[b, j] * u[b, i]   (RTRL's immediate Jacobian F_t of the SRN).
// The GEMM is BLAS's (the Fortran sgemm / dgemm whose addresses Python hands over once with
// tca_set_blas, taken from scipy.linalg.cython_blas): row-major C = A M is column-major
// C^T = M^T A^T, so BLAS is called with the operands swapped and no transposes.
//
// LstmForward / LstmBackward: the recurrent core of tca_jax/ops/lstm_scan.py (gates i, f, g, o)
// given the input projections xproj[t] = x_t W_x + b; per step one GEMM (h W_h forward, dz W_h^T
// backward) and the gates' elementwise loop; see lstm_scan.py for what each stores.

#include <cmath>
#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename T>
using gemm_t = void (*)(const char*, const char*, const int*, const int*, const int*, const T*,
                        const T*, const int*, const T*, const int*, const T*, T*, const int*);

gemm_t<float> g_sgemm = nullptr;
gemm_t<double> g_dgemm = nullptr;

template <typename T> gemm_t<T> Gemm();
template <> gemm_t<float> Gemm<float>() { return g_sgemm; }
template <> gemm_t<double> Gemm<double>() { return g_dgemm; }

template <ffi::DataType DT>
ffi::Error BmmDiagImpl(ffi::Buffer<DT> a, ffi::Buffer<DT> m, ffi::Buffer<DT> d,
                       ffi::Buffer<DT> u, ffi::ResultBuffer<DT> out) {
  using T = ffi::NativeType<DT>;
  gemm_t<T> gemm = Gemm<T>();
  if (gemm == nullptr) return ffi::Error::InvalidArgument("tca_bmm_diag: BLAS not set");
  auto ad = a.dimensions();
  auto md = m.dimensions();
  auto dd = d.dimensions();
  auto ud = u.dimensions();
  if (ad.size() < 2 || md.size() != ad.size() || dd.size() != ad.size() - 1 ||
      ud.size() != ad.size() - 1) {
    return ffi::Error::InvalidArgument("tca_bmm_diag: ranks of A, M, d, u do not match");
  }
  const int64_t rank = ad.size();
  int64_t batch = 1;
  for (int64_t r = 0; r < rank - 2; ++r) {
    if (md[r] != ad[r] || dd[r] != ad[r] || ud[r] != ad[r]) {
      return ffi::Error::InvalidArgument("tca_bmm_diag: batch dimensions differ");
    }
    batch *= ad[r];
  }
  const int n = static_cast<int>(ad[rank - 2]);
  const int k = static_cast<int>(ad[rank - 1]);
  const int p = static_cast<int>(md[rank - 1]);
  const int q = static_cast<int>(ud[rank - 2]);
  if (md[rank - 2] != k || dd[rank - 2] != n || (q != 0 && static_cast<int64_t>(q) * n != p)) {
    return ffi::Error::InvalidArgument("tca_bmm_diag: inner shapes do not match");
  }
  const T* ap = a.typed_data();
  const T* mp = m.typed_data();
  const T* dp = d.typed_data();
  const T* up = u.typed_data();
  T* cp = out->typed_data();
  const T one = 1, zero = 0;
  const char no = 'N';
  for (int64_t b = 0; b < batch; ++b) {
    const T* ab = ap + b * n * k;
    const T* mb = mp + b * static_cast<int64_t>(k) * p;
    T* cb = cp + b * static_cast<int64_t>(n) * p;
    if (n > 0 && p > 0) {
      if (k > 0) {
        // Column-major C^T [p, n] = M^T [p, k] @ A^T [k, n].
        gemm(&no, &no, &p, &n, &k, &one, mb, &p, ab, &k, &zero, cb, &p);
      } else {
        for (int64_t e = 0; e < static_cast<int64_t>(n) * p; ++e) cb[e] = 0;
      }
    }
    if (q > 0) {
      const T* db = dp + b * n;
      const T* ub = up + b * q;
      for (int j = 0; j < n; ++j) {
        T* row = cb + static_cast<int64_t>(j) * p + j;
        const T dj = db[j];
        for (int i = 0; i < q; ++i) row[static_cast<int64_t>(i) * n] += dj * ub[i];
      }
    }
  }
  return ffi::Error::Success();
}

template <typename T>
inline T Sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// xproj [T, B, 4H], w_h [H, 4H], h0, c0 [B, H] -> hs [T, B, H], gates [T, B, 4H] (activated),
// cs [T, B, H] (the cell state leaving each step).
template <ffi::DataType DT>
ffi::Error LstmForwardImpl(ffi::Buffer<DT> xproj, ffi::Buffer<DT> w_h, ffi::Buffer<DT> h0,
                           ffi::Buffer<DT> c0, ffi::ResultBuffer<DT> hs,
                           ffi::ResultBuffer<DT> gates, ffi::ResultBuffer<DT> cs) {
  using T = ffi::NativeType<DT>;
  gemm_t<T> gemm = Gemm<T>();
  if (gemm == nullptr) return ffi::Error::InvalidArgument("tca_lstm_forward: BLAS not set");
  auto xd = xproj.dimensions();
  if (xd.size() != 3) return ffi::Error::InvalidArgument("tca_lstm_forward: xproj not [T, B, 4H]");
  const int64_t steps = xd[0];
  const int b = static_cast<int>(xd[1]);
  const int h4 = static_cast<int>(xd[2]);
  const int h = h4 / 4;
  const T* xp = xproj.typed_data();
  const T* w = w_h.typed_data();
  T* hp = hs->typed_data();
  T* gp = gates->typed_data();
  T* cp = cs->typed_data();
  const T one = 1;
  const char no = 'N';
  const int64_t bh = static_cast<int64_t>(b) * h, bh4 = static_cast<int64_t>(b) * h4;
  for (int64_t t = 0; t < steps; ++t) {
    const T* h_prev = t == 0 ? h0.typed_data() : hp + (t - 1) * bh;
    const T* c_prev = t == 0 ? c0.typed_data() : cp + (t - 1) * bh;
    T* z = gp + t * bh4;
    for (int64_t e = 0; e < bh4; ++e) z[e] = xp[t * bh4 + e];
    // Row-major z [B, 4H] += h [B, H] W_h [H, 4H]: column-major z^T += W_h^T h^T.
    if (h > 0) gemm(&no, &no, &h4, &b, &h, &one, w, &h4, h_prev, &h, &one, z, &h4);
    T* h_out = hp + t * bh;
    T* c_out = cp + t * bh;
    for (int r = 0; r < b; ++r) {
      T* zr = z + static_cast<int64_t>(r) * h4;
      for (int j = 0; j < h; ++j) {
        const T i = Sigmoid(zr[j]), f = Sigmoid(zr[h + j]), g = std::tanh(zr[2 * h + j]),
                o = Sigmoid(zr[3 * h + j]);
        zr[j] = i; zr[h + j] = f; zr[2 * h + j] = g; zr[3 * h + j] = o;
        const T c = f * c_prev[r * h + j] + i * g;
        c_out[r * h + j] = c;
        h_out[r * h + j] = o * std::tanh(c);
      }
    }
  }
  return ffi::Error::Success();
}

// dhs [T, B, H], gates [T, B, 4H], cs [T, B, H], c0 [B, H], w_h [H, 4H], keep [T] (0 where the
// state entering step t is cut), dh_T, dc_T [B, H] -> dz [T, B, 4H] (pre-activation cotangents),
// dh0, dc0 [B, H].
template <ffi::DataType DT>
ffi::Error LstmBackwardImpl(ffi::Buffer<DT> dhs, ffi::Buffer<DT> gates, ffi::Buffer<DT> cs,
                            ffi::Buffer<DT> c0, ffi::Buffer<DT> w_h, ffi::Buffer<DT> keep,
                            ffi::Buffer<DT> dh_t, ffi::Buffer<DT> dc_t,
                            ffi::ResultBuffer<DT> dz_out, ffi::ResultBuffer<DT> dh0,
                            ffi::ResultBuffer<DT> dc0) {
  using T = ffi::NativeType<DT>;
  gemm_t<T> gemm = Gemm<T>();
  if (gemm == nullptr) return ffi::Error::InvalidArgument("tca_lstm_backward: BLAS not set");
  auto gd = gates.dimensions();
  if (gd.size() != 3) return ffi::Error::InvalidArgument("tca_lstm_backward: gates not [T, B, 4H]");
  const int64_t steps = gd[0];
  const int b = static_cast<int>(gd[1]);
  const int h4 = static_cast<int>(gd[2]);
  const int h = h4 / 4;
  const int64_t bh = static_cast<int64_t>(b) * h, bh4 = static_cast<int64_t>(b) * h4;
  T* dh = dh0->typed_data();  // the carries, left holding the entering state's cotangents
  T* dc = dc0->typed_data();
  for (int64_t e = 0; e < bh; ++e) { dh[e] = dh_t.typed_data()[e]; dc[e] = dc_t.typed_data()[e]; }
  std::vector<T> dh_prev(bh);
  const T one = 1, zero = 0;
  const char no = 'N', tr = 'T';
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* g_t = gates.typed_data() + t * bh4;
    const T* c_t = cs.typed_data() + t * bh;
    const T* c_prev = t == 0 ? c0.typed_data() : cs.typed_data() + (t - 1) * bh;
    const T* dhs_t = dhs.typed_data() + t * bh;
    T* dz = dz_out->typed_data() + t * bh4;
    for (int r = 0; r < b; ++r) {
      const T* gr = g_t + static_cast<int64_t>(r) * h4;
      T* dzr = dz + static_cast<int64_t>(r) * h4;
      for (int j = 0; j < h; ++j) {
        const int64_t e = static_cast<int64_t>(r) * h + j;
        const T i = gr[j], f = gr[h + j], g = gr[2 * h + j], o = gr[3 * h + j];
        const T tc = std::tanh(c_t[e]);
        const T dht = dh[e] + dhs_t[e];
        const T dct = dc[e] + dht * o * (1 - tc * tc);
        dzr[j] = dct * g * i * (1 - i);
        dzr[h + j] = dct * c_prev[e] * f * (1 - f);
        dzr[2 * h + j] = dct * i * (1 - g * g);
        dzr[3 * h + j] = dht * tc * o * (1 - o);
        dc[e] = dct * f;
      }
    }
    // Row-major dh_prev [B, H] = dz [B, 4H] W_h^T: column-major dh_prev^T = W_h dz^T, where the
    // stored W_h is column-major W_h^T [4H, H].
    if (h > 0) gemm(&tr, &no, &h, &b, &h4, &one, w_h.typed_data(), &h4, dz, &h4, &zero,
                    dh_prev.data(), &h);
    const T k = keep.typed_data()[t];
    for (int64_t e = 0; e < bh; ++e) { dh[e] = dh_prev[e] * k; dc[e] *= k; }
  }
  return ffi::Error::Success();
}

}  // namespace

extern "C" void tca_set_blas(void* sgemm, void* dgemm) {
  g_sgemm = reinterpret_cast<gemm_t<float>>(sgemm);
  g_dgemm = reinterpret_cast<gemm_t<double>>(dgemm);
}

// The four handlers of one dtype: bmm_diag (a, m, d, u -> out), the LSTM forward (xw, w_h, h0,
// c0 -> hs, cs, gates) and backward (8 inputs -> dz, dh0, dc0), bound for F32 and F64 below.
#define TCA_BUF(DT) ffi::Buffer<ffi::DataType::DT>
#define TCA_DEFINE_HANDLERS(DT)                                                             \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(TcaBmmDiag##DT, BmmDiagImpl<ffi::DataType::DT>,             \
                                ffi::Ffi::Bind()                                            \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Ret<TCA_BUF(DT)>());                                   \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(TcaLstmForward##DT, LstmForwardImpl<ffi::DataType::DT>,     \
                                ffi::Ffi::Bind()                                            \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Ret<TCA_BUF(DT)>().Ret<TCA_BUF(DT)>()                  \
                                    .Ret<TCA_BUF(DT)>());                                   \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(TcaLstmBackward##DT, LstmBackwardImpl<ffi::DataType::DT>,   \
                                ffi::Ffi::Bind()                                            \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Arg<TCA_BUF(DT)>().Arg<TCA_BUF(DT)>()                  \
                                    .Ret<TCA_BUF(DT)>().Ret<TCA_BUF(DT)>()                  \
                                    .Ret<TCA_BUF(DT)>());

TCA_DEFINE_HANDLERS(F32)
TCA_DEFINE_HANDLERS(F64)
