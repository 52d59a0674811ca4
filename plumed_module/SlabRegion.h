/* molenv: smooth slab region used to restrict the class populations to the molecules
   whose centre lies in a slab (e.g. around a moving interface).

   The slab is normal to the cell face spanned by the two cell vectors other than
   `axis` (for an orthorhombic cell, or any lower-triangular cell along z, that is
   plain x, y or z).  The signed distance delta of a centre from the slab centre is
   taken along that normal with the periodic minimum image, and the weight is
     w = 1                     for |delta| <= halfwidth
     w = 1 - S(t)              t = (|delta| - halfwidth)/smoothing in (0, 1)
     w = 0                     beyond halfwidth + smoothing
   with the quintic smoothstep S(t) = t^3 (10 - 15 t + 6 t^2), which makes w twice
   continuously differentiable, so forces and their derivatives stay continuous.

   Box derivative.  At fixed fractional coordinates delta = s'_a height_a - centre,
   where s' are the fractional coordinates of the image r' of the centre that is
   used and height_a = 1/|g_a| with g_a the reciprocal vector (column a of h^-1).
   Because the slab is tied to the cell face, a shear of the cell tilts its normal n;
   differentiating height_a gives PLUMED's box derivative  -h^T dF/dh =
   -(r'.n) n (x) dF/dr  (symmetric, as it must be for a rotation-invariant
   definition).  Note this is not -r' (x) dF/dr, which would describe a slab whose
   normal stays fixed in space; the two agree only in the n (x) n component.
   Without periodic boundaries the axis is a fixed Cartesian direction and the box
   derivative is PLUMED's usual -r (x) dF/dr.  Both are checked against finite
   differences of the box in the regression tests. */
#ifndef __MOLENV_SlabRegion_h
#define __MOLENV_SlabRegion_h

#include "NeighbourCells.h"

#include <cmath>

namespace PLMD {
namespace molenv {

struct SlabRegion {
  bool enabled = false;
  unsigned axis = 2;
  double centre = 0.0, halfwidth = 0.0, smoothing = 0.0;  // Angstrom

  /// Weight of a centre at r (Angstrom); dwdr = dw/dr (1/Angstrom); rbox = the
  /// position p for which the box derivative of this term is -p (x) dF/dr:
  /// (r'.n) n with r' the image used (periodic), r itself (no periodicity).
  double weight(const CellGeometry& cell, const double* r, double* dwdr, double* rbox) const {
    double n[3];
    cell.faceNormal(axis, n);
    double x = r[0] * n[0] + r[1] * n[1] + r[2] * n[2] - centre;
    double shift = 0.0;
    if (cell.periodic) shift = std::nearbyint(x / cell.height[axis]);
    const double delta = x - shift * cell.height[axis];
    // projection of the image used on the normal: delta + centre
    const double along = delta + centre;
    for (unsigned j = 0; j < 3; ++j) {
      rbox[j] = cell.periodic ? along * n[j] : r[j];
      dwdr[j] = 0.0;
    }
    const double u = std::fabs(delta) - halfwidth;
    if (u <= 0.0) return 1.0;
    if (u >= smoothing) return 0.0;
    const double t = u / smoothing;
    const double w = 1.0 - t * t * t * (10.0 + t * (-15.0 + 6.0 * t));
    const double dwdt = -30.0 * t * t * (1.0 - t) * (1.0 - t);
    const double dwddelta = dwdt / smoothing * (delta < 0.0 ? -1.0 : 1.0);
    for (unsigned j = 0; j < 3; ++j) dwdr[j] = dwddelta * n[j];
    return w;
  }
};

}  // namespace molenv
}  // namespace PLMD

#endif
