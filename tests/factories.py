"""factory_boy factories for test data."""
import factory
from django.contrib.auth import get_user_model

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, password=PASSWORD, **kwargs)


def teammates(owner, *others, name: str = "team"):
    """A team of these users, as if each had accepted the owner's invitation: people assign
    personal todos only to someone they share a team with."""
    from apps.todos.models import Team

    team = Team.objects.create(name=name, owner=owner)
    team.members.add(owner, *others)
    return team
