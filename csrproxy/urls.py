from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from signing import api, api_usage

from .views import healthz

urlpatterns = [
    path("api/v1/certificates/", api.CertificateListCreateApi.as_view(), name="certificate-list"),
    path("api/v1/certificates/<int:pk>/", api.CertificateDetailApi.as_view(),
         name="certificate-detail"),
    path("api/v1/certificates/<int:pk>/chain", api.CertificateChainApi.as_view(),
         name="certificate-chain"),
    path("api/v1/usage/", api_usage.UsageApi.as_view(), name="usage"),
    path("v1/sign", api.LegacySignApi.as_view(), name="legacy-sign"),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[],
                                                  permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[],
                                                     permission_classes=[]), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

handler400 = "csrproxy.views.bad_request"
handler404 = "csrproxy.views.not_found"
handler500 = "csrproxy.views.server_error"
